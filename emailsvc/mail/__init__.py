"""Mail: templates, message building and the transports that deliver messages.

``config.include("emailsvc.mail")`` adds the heartbeat check of the configured transport,
and that of the DKIM keys when some are configured.
"""


def check_transport(assembly, timeout):
    """The transport can deliver: it connects (or writes) the way delivery does."""
    assembly.transport.check(timeout)


def check_dkim_keys(assembly, timeout):
    """Every DKIM key file can still be read and parsed (a restart would need it)."""
    assembly.dkim.check(timeout)


def includeme(config):
    """Register the mail transport's heartbeat check, and the DKIM keys' when there are any."""
    config.add_heartbeat_check("mail", check_transport)
    if config.registry.emailsvc.dkim.keys:
        config.add_heartbeat_check("dkim", check_dkim_keys)
