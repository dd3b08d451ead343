"""Bounces and complaints: the reports that come back to the VERP envelope senders.

``reports`` reads a DSN (RFC 3464) or an ARF complaint (RFC 5965), ``actions`` turns one
into suppressions and job errors, ``receiver`` is the SMTP server of ``emailsvc-bounces``.
"""
