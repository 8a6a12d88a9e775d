"""`python -m agents.notifier` starts the alert notifier (also `tradebus notifier`)."""

import sys

from agents.notifier import NotifierAgent
from agents.runtime.base import run_agent

if __name__ == "__main__":
    sys.exit(run_agent(NotifierAgent))
