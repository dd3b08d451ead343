"""Mail: templates, message building and the transports that deliver messages.

``config.include("emailsvc.mail")`` adds the heartbeat check of the configured transport.
"""


def check_transport(assembly, timeout):
    """The transport can deliver: it connects (or writes) the way delivery does."""
    assembly.transport.check(timeout)


def includeme(config):
    """Register the mail transport's heartbeat check."""
    config.add_heartbeat_check("mail", check_transport)
