# Records sock_diag dumps of known sockets for flowtop's unit tests (run inside a fresh netns).
import os, socket, struct, sys
out = sys.argv[1]
NETLINK_SOCK_DIAG = 4; SOCK_DIAG_BY_FAMILY = 20
def dump(family, proto):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    req = struct.pack("=BBBxI", family, proto, 0, 0xffffffff) + b"\0" * 48
    hdr = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, 0x301, 1, 0)
    s.sendto(hdr + req, (0, 0))
    data = b""
    while True:
        chunk = s.recv(65536); data += chunk
        # stop at NLMSG_DONE (type 3)
        off = 0; done = False
        while off < len(chunk):
            ln, ty = struct.unpack_from("=IH", chunk, off)
            if ty == 3: done = True
            off += (ln + 3) & ~3
        if done: return data
ino = lambda so: os.fstat(so.fileno()).st_ino
l4 = socket.socket(); l4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l4.bind(("127.0.0.1", 7000)); l4.listen()
l6 = socket.socket(socket.AF_INET6); l6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); l6.bind(("::", 7001)); l6.listen()
c4 = socket.create_connection(("127.0.0.1", 7000)); a4, _ = l4.accept()
c6 = socket.create_connection(("127.0.0.1", 7001)); a6, _ = l6.accept()  # v4 client, v6 server
u4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u4.bind(("0.0.0.0", 7002))
u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u6.bind(("::1", 7003)); u6.connect(("::1", 7004))
for name, fam, proto in (("tcp4", socket.AF_INET, 6), ("tcp6", socket.AF_INET6, 6), ("udp4", socket.AF_INET, 17), ("udp6", socket.AF_INET6, 17)):
    open(f"{out}/sock_diag_{name}.bin", "wb").write(dump(fam, proto))
with open(f"{out}/sock_diag_inodes.txt", "w") as f:
    f.write("# socket inodes of the recorded sockets (name inode local_port remote_port)\n")
    for n, so in (("listen4", l4), ("listen6", l6), ("client4", c4), ("accepted4", a4), ("client6", c6), ("accepted6", a6), ("udp4", u4), ("udp6", u6)):
        sa = so.getsockname(); pa = so.getpeername() if n not in ("listen4", "listen6", "udp4") else (None, 0)
        f.write(f"{n} {ino(so)} {sa[1]} {pa[1]}\n")
