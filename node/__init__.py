"""The only package with network I/O: the trio daemon on py-libp2p and the local API.

Deliberately imports nothing: ``import libp2p`` costs about a second, and commands such as
``distspace cat`` import ``node.home`` without wanting the network stack. Import the
submodules: ``node.host`` (libp2p host), ``node.framing`` (frame streams), ``node.relay``
(circuit relay v2), ``node.home`` (node home and config), ``node.errors``, ``node.events`` (the
node's events and its bus), ``node.network`` (the network's run loop; with ``node.keepers``,
``node.genesis_exchange``, ``node.sync_driver``, ``node.discovery``, ``node.metrics``), and
``node.wiring`` (how a daemon runs the network beside the API: start there).
"""
