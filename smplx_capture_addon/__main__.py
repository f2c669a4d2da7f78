import signal
import sys

from .cpu_threads import spin_briefly

spin_briefly()

from .cli import main  # noqa: E402  (after the environment torch reads when it loads)

status = main()
# The work is done: a Ctrl-C while Python (and Blender) shut down would only turn success into
# a death by signal.
signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.exit(status)
