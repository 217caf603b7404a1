"""Human-in-the-loop decisions: the Required Actions form of the restock and fraud-review DAGs."""
