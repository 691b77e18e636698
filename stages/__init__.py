"""One module per DVC stage; each is run as ``python -m stages.<name>``.

Importing this package filters TensorFlow's C++ start-up noise out of stderr
(:mod:`digits.core.quiet`) before any stage module imports TensorFlow, and turns Ctrl-C
during the seconds of module imports into the same one line as later
(:func:`digits.core.cli.run` takes over once the stage's ``main`` starts).
"""

import signal
import sys

from digits.core import quiet


def _interrupted_while_importing(signum: int, frame: object) -> None:
    stage = next((arg.rpartition(".")[2] for arg in sys.orig_argv if arg.startswith("stages.")), "stage")
    sys.exit(f"{stage}: interrupted; run it again to finish")


signal.signal(signal.SIGINT, _interrupted_while_importing)
signal.signal(signal.SIGTERM, _interrupted_while_importing)
quiet.install()
