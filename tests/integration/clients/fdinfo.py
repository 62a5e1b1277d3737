"""What a file descriptor a client received is, as the client sees it
(fstat, getsockopt and /proc only): for the tests' python clients."""
import fcntl
import os
import socket
import stat


def describe(fd):
    """'<kind> <access>': kind pipe, packet-socket, unix-socket,
    netlink-socket, socket, file or other; access r, w or rw."""
    st = os.fstat(fd)
    if stat.S_ISFIFO(st.st_mode):
        kind = "pipe"
    elif stat.S_ISSOCK(st.st_mode):
        s = socket.socket(fileno=os.dup(fd))
        try:
            kind = {socket.AF_PACKET: "packet-socket", socket.AF_UNIX: "unix-socket",
                    socket.AF_NETLINK: "netlink-socket"}.get(s.family, "socket")
        finally:
            s.close()
    elif stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        kind = "file"
    else:
        kind = "other"
    access = {os.O_RDONLY: "r", os.O_WRONLY: "w", os.O_RDWR: "rw"}[
        fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE]
    return kind + " " + access


def open_fds():
    """The numbers of this process's open descriptors."""
    listed = [int(n) for n in os.listdir("/proc/self/fd")]
    # (The listing's own descriptor is in the list, and closed by now.)
    return {fd for fd in listed if _is_open(fd)}


def _is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False
