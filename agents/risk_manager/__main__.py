"""`python -m agents.risk_manager` starts this agent."""

import sys

from agents.runtime.launch import launch

if __name__ == "__main__":
    sys.exit(launch("risk_manager"))
