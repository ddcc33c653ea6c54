"""Loaded by every Python the tests start with `PYTHONPATH=tests/peers` (the localstripe
peer, see `tests/api/localstripe.rs`): imports each `localstripe_*.py` module beside this
file, each of which adds to localstripe a behaviour of Stripe's that crowdledger relies on
and localstripe lacks. A module per behaviour, so extensions do not touch one another."""

import importlib
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))

for _name in sorted(os.listdir(_here)):
    if _name.startswith('localstripe_') and _name.endswith('.py'):
        try:
            importlib.import_module(_name[:-3])
        except ImportError as e:  # not the localstripe venv: nothing to extend
            print('tests/peers: %s not loaded: %s' % (_name, e), file=sys.stderr)
