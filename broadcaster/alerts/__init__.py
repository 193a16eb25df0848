"""Monitoring alerts in: what Alertmanager, Grafana, Uptime Kuma or any JSON poster report
(`payloads`), acted on as drafts and staff alerts (`drafts`)."""
