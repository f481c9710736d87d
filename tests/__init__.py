"""conf's tests; shared helpers live in :mod:`tests.helpers`."""
