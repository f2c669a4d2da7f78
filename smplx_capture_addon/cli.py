"""Command line: `python -m smplx_capture_addon COMMAND ...`.

Each command lives in the room it belongs to, in a module that offers `HELP`,
`add_arguments(parser)` and `run(args) -> int`. Those modules import heavy packages
(torch, mediapipe, bpy) inside `run`, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from .errors import EXIT_CANCELLED, Cancelled, CaptureError

# command name -> module (relative to this package) that implements it
COMMANDS: dict[str, str] = {
    "model-info": ".body_model.cli",
    "detect": ".keypoints.cli",
    "blend": ".blender_builders.cli",
    "export": ".export.cli",
    "worker": ".worker.cli",
    "fit": ".solver.cli_fit",
    "fit-video": ".video.cli",
    "import-motion": ".blender_builders.cli_import",
}
# Development commands, offered only where their package is: devtools/ is left out of the extension zips.
DEVELOPMENT_COMMANDS: dict[str, str] = {
    "bench": ".devtools.cli_bench",
    "bench-rendered": ".devtools.cli_bench_rendered",
}


def available_commands() -> dict[str, str]:
    """COMMANDS, and in a checkout (where devtools/ exists) the development commands too."""
    if importlib.util.find_spec(".devtools", __package__) is None:
        return dict(COMMANDS)
    return {**COMMANDS, **DEVELOPMENT_COMMANDS}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m smplx_capture_addon",
        description="SMPL-X Capture: fit an SMPL-X body to a photo and build a Blender rig.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in available_commands().items():
        module = importlib.import_module(module_name, __package__)
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
        command_parser.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (Cancelled, KeyboardInterrupt):  # Ctrl-C: the writers leave nothing half-written
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except CaptureError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
