"""The one channel between the grader and the sandboxed student kernel."""
