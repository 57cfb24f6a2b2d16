"""The sensor simulator: homes, routines and incidents published over MQTT; arrives with its own issue."""
