"""Host side of the sandbox: launches the untrusted student kernel under bubblewrap and builds its scratch dir."""
