"""What the rule decides: the KQL operators, the query windows, each stage of the query, and the alerts."""
