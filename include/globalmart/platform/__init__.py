"""The local platform: every service a real process on this machine, under supervisord."""
