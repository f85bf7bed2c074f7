"""The service runtime: ingress, bus, workers, settings and observability. Service authors do not edit it."""
