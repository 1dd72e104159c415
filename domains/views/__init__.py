"""The admin pages of the mail tables, one module per concern."""
