"""IMAP for mail clients: domain mailboxes and tasks as folders, served by twisted.mail.imap4."""
