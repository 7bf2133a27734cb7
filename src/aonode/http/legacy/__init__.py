"""The legacy ao network's surface: the Scheduler Unit (:mod:`.su`), the Compute
Unit's readers (:mod:`.cu`) and the gateway's GraphQL (:mod:`.graphql`)."""
