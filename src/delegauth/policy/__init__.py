"""Policy: the Casbin model and rules from policies/, and the decisions made from them."""
