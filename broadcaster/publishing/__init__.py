"""What the staff publish: incidents (open, update, resolve), maintenance windows and their notices,
postmortems. Every publication goes through one write (`update_writer`): render and lint, then the
update, its renditions and its deliveries in one transaction."""
