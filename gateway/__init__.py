"""The gateway owns every edge: MQTT, the journal, the stores, the notifier and the clock."""
