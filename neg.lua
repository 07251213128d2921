conn = mt.connect("inet:39123@127.0.0.1", 20, 0.1)
mt.macro(conn, SMFIC_CONNECT, "{daemon_addr}", "x")
mt.conninfo(conn, "a", "192.0.2.1")
mt.mailfrom(conn, "<x@y.example>")
if mt.getreply(conn) ~= SMFIR_CONTINUE then error("expected failure") end
