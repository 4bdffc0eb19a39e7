"""What an organisation's settings can be made to do, once for both faces: the command line
(cli/) and the management API (api/) call these, so no rule of the business (a limit, a
check, what a rule may name) lives in only one of them. Each works on a Workspace: the
organisation's settings, the document that edits them and the store."""
