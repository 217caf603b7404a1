"""GlobalMart: real-time e-commerce analytics platform."""
