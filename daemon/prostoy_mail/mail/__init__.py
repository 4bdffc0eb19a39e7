"""Messages: parsing and decoding, addresses, line ends, Message-IDs and reply tokens."""
