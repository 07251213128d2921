// null_milter: a baseline for bench/milter_bench.sh. A libmilter filter that
// negotiates the same callbacks and protocol steps as o365relay-milter
// (no reply for connect/headers/body; no HELO/DATA/EOH/unknown) but applies no
// policy: it answers continue everywhere and, at end of message, adds one
// header and writes one log line, as o365relay-milter does for an accepted
// message. Run: null_milter -c CONFIG (reads `socket =` and `log = file:` from
// the o365relay config the bench writes). Not a product: bench only.
#include <fcntl.h>
#include <libmilter/mfapi.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace {

int g_log = -1;

void log_line(const std::string& s) {
    std::string l = s + "\n";
    if (g_log >= 0 && ::write(g_log, l.data(), l.size()) < 0) {
    }
}

sfsistat cb_negotiate(SMFICTX*, unsigned long f0, unsigned long f1, unsigned long, unsigned long,
                      unsigned long* pf0, unsigned long* pf1, unsigned long* pf2,
                      unsigned long* pf3) {
    *pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGFROM);
    unsigned long steps = SMFIP_NOHELO | SMFIP_NODATA | SMFIP_NOUNKNOWN | SMFIP_NOEOH;
    steps |= f1 & (SMFIP_NR_CONN | SMFIP_NR_HDR | SMFIP_NR_BODY);
    *pf1 = steps & f1;
    *pf2 = *pf3 = 0;
    return SMFIS_CONTINUE;
}
sfsistat cb_connect(SMFICTX*, char*, _SOCK_ADDR*) {
    return SMFIS_CONTINUE;
}
sfsistat cb_envfrom(SMFICTX*, char**) {
    return SMFIS_CONTINUE;
}
sfsistat cb_envrcpt(SMFICTX*, char**) {
    return SMFIS_CONTINUE;
}
sfsistat cb_header(SMFICTX*, char*, char*) {
    return SMFIS_CONTINUE;
}
sfsistat cb_body(SMFICTX*, unsigned char*, size_t) {
    return SMFIS_CONTINUE;
}
sfsistat cb_eom(SMFICTX* ctx) {
    char name[] = "X-O365Relay-Account", value[] = "noreply";
    smfi_addheader(ctx, name, value);
    const char* qid = smfi_getsymval(ctx, const_cast<char*>("i"));
    log_line(std::string(qid ? qid : "NOQUEUE") + ": verdict=accept (null milter)");
    return SMFIS_CONTINUE;
}
sfsistat cb_abort(SMFICTX*) {
    return SMFIS_CONTINUE;
}
sfsistat cb_close(SMFICTX*) {
    return SMFIS_CONTINUE;
}

std::string config_value(const std::string& path, const std::string& key) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        auto eq = line.find('=');
        if (eq == std::string::npos) continue;
        std::string k = line.substr(0, eq);
        k.erase(k.find_last_not_of(" \t") + 1);
        if (k != key) continue;
        std::string v = line.substr(eq + 1);
        v.erase(0, v.find_first_not_of(" \t"));
        v.erase(v.find_last_not_of(" \t\r") + 1);
        return v;
    }
    return {};
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3 || std::strcmp(argv[1], "-c") != 0) {
        std::fprintf(stderr, "usage: null_milter -c CONFIG\n");
        return 64;
    }
    std::string socket = config_value(argv[2], "socket");
    std::string log = config_value(argv[2], "log");
    if (log.rfind("file:", 0) == 0)
        g_log = ::open(log.substr(5).c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    std::string path = socket.rfind("unix:", 0) == 0 ? socket.substr(5) : "";
    smfiDesc desc{};
    desc.xxfi_name = const_cast<char*>("null-milter");
    desc.xxfi_version = SMFI_VERSION;
    desc.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGFROM;
    desc.xxfi_connect = cb_connect;
    desc.xxfi_envfrom = cb_envfrom;
    desc.xxfi_envrcpt = cb_envrcpt;
    desc.xxfi_header = cb_header;
    desc.xxfi_body = cb_body;
    desc.xxfi_eom = cb_eom;
    desc.xxfi_abort = cb_abort;
    desc.xxfi_close = cb_close;
    desc.xxfi_negotiate = cb_negotiate;
    if (smfi_setconn(socket.data()) != MI_SUCCESS || smfi_register(desc) != MI_SUCCESS ||
        smfi_opensocket(true) != MI_SUCCESS) {
        std::fprintf(stderr, "null_milter: cannot listen on %s\n", socket.c_str());
        return 78;
    }
    if (!path.empty()) ::chmod(path.c_str(), 0666);
    log_line("null milter started: socket " + socket);
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
