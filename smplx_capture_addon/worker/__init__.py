"""The fitting worker: runs detection and fitting in a process of its own, so a crash or
a cancel there never takes Blender down. `protocol` says how it talks, `runner` starts
and follows it from Blender, `cli` is the worker itself (its command line), `job` one
fit and its messages, `serve` the worker that serves one fit after another."""
