"""nbgrader steps: run on the host, inside nbgrader's own process, configured in nbgrader_config.py."""
