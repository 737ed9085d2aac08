"""What a finished point or run says: its summary and its HTML report."""
