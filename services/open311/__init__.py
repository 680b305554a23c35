"""The Open311 GeoReport v2 gateway: upstream systems (a city portal, an app) post complaints as service
requests and read their status back; the complaint goes on as a ChannelEvent, like every channel's."""
