"""The Kopf operator: thin handlers over the Reconciler."""
