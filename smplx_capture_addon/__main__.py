import signal
import sys

from .cli import main

status = main()
# The work is done: a Ctrl-C while Python (and Blender) shut down would only turn success into
# a death by signal.
signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.exit(status)
