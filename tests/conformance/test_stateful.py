"""The Hypothesis state machine under the CI profile (DYNASPEC_PROFILE=deep for longer).

``pytest tests/conformance/test_stateful.py --hypothesis-show-statistics`` reports how
often the rare situations were reached (Hypothesis events).
"""

from __future__ import annotations

import os

from conformance.stateful import PROFILES, ReplicationMachine

TestReplication = ReplicationMachine.TestCase
TestReplication.settings = PROFILES[os.environ.get("DYNASPEC_PROFILE", "ci")]
