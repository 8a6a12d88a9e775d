"""`python -m agents.technical_analysis` starts this agent."""

import sys

from agents.runtime.launch import launch

if __name__ == "__main__":
    sys.exit(launch("technical_analysis"))
