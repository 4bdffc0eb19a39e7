"""The task store: users, projects, tasks, stored messages and comments."""
