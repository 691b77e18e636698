"""One module per DVC stage; each is run as ``python -m stages.<name>``.

Importing this package filters TensorFlow's C++ start-up noise out of stderr
(:mod:`digits.core.quiet`) before any stage module imports TensorFlow.
"""

from digits.core import quiet

quiet.install()
