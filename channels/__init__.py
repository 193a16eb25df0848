"""The channels: one package each (`channels/<name>/`: its adapter, inbound parsing, transport and
settings, declared by one `ChannelSpec`), the contract they share (`base`), and the registry that
lists them (`registry`). Nothing here reads the product's configuration or database."""
