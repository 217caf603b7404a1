"""Complete days only: the daily batch waits, in the triggerer, until the raw archiver has archived the whole day."""
