"""``python -m agent``: start the AgentCore app server."""

import sys

from agent.app import main

sys.exit(main())
