"""Staff accounts: users and roles, passwords and the second factor, sessions, API tokens, the audit log."""
