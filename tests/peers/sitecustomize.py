"""Loaded by every Python the tests start with `PYTHONPATH=tests/peers`; when
`CROWDLEDGER_PEER_PATCHES=1` (the localstripe peer, see `tests/api/localstripe.rs`) it
imports each `localstripe_*.py` module beside this file, each of which adds to localstripe a behaviour of Stripe's that crowdledger relies on
and localstripe lacks. A module per behaviour, so extensions do not touch one another."""

import importlib
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))

if os.environ.get('CROWDLEDGER_PEER_PATCHES') != '1':
    _names = []  # another Python than the test peer: nothing to extend
else:
    _names = sorted(os.listdir(_here))

for _name in _names:
    if _name.startswith('localstripe_') and _name.endswith('.py'):
        try:
            importlib.import_module(_name[:-3])
        except ImportError as e:  # not the localstripe venv: nothing to extend
            print('tests/peers: %s not loaded: %s' % (_name, e), file=sys.stderr)
