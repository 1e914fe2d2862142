"""The security sweep: each protection has a test that fails when it is removed."""
