// The Microsoft Graph method (method.hpp): graph_client.hpp's steps with the
// account's Graph-audience token from the shared cache, bounded by the
// delivery's deadline; the outcome keeps the SMTP forms
// (relay=graph.microsoft.com[addr]:443).
#include "graph_client.hpp"
#include "log.hpp"
#include "method.hpp"

namespace o365 {

MethodResult deliver_by_graph(MethodContext& c, const MethodInput& in) {
    const std::string qid = c.args.queue_id;
    GraphDelivery d{c.config.graph,
                    c.config.relay.state_dir,
                    in.account,
                    c.tokens,
                    c.args.recipients,
                    c.deadline,
                    [&qid](const std::string& text) { log_info(qid + ": " + text); }};
    MessageSpool& spool = in.spool;
    GraphResult g = send_by_graph(d, GraphMessage{spool, [&spool] { spool.rewind(); }});
    DeliveryReport& rep = c.rep;
    rep.relay = g.peer;
    rep.token_refreshed = g.token_refreshed;
    rep.delays[1] = g.token_seconds;
    rep.delays[3] = g.transmit_seconds;
    if (g.delivered)
        return MethodResult{delivered_by_graph(g.http_status, g.stage, g.peer), {}, {}};
    MethodResult r;
    r.failures.push_back(g.failure
                             ? *g.failure
                             : local_failure(Cause::internal, g.stage,
                                             "Microsoft Graph delivery ended without outcome"));
    return r;
}

}  // namespace o365
