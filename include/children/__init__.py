"""Children's data: who is a child under 13 (the rules), and finding them in the operational database."""
