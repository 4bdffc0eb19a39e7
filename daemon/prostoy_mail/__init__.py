"""prostoy-mail: the mail daemon of the Prostoy.biz CRM."""

__version__ = "0.1.0"
