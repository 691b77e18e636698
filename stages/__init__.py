"""One module per DVC stage; each is run as ``python -m stages.<name>``.

Importing this package filters TensorFlow's C++ start-up noise out of stderr
(:mod:`digits.quiet`) before any stage module imports TensorFlow.
"""

from digits import quiet

quiet.install()
