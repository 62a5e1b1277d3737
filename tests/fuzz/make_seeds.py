#!/usr/bin/env python3
"""Writes the hand-made seed corpora of tests/fuzz/corpus/<target>/: small
valid and near-valid inputs for each fuzz target. Run from anywhere; the
files it writes are committed, so this is only needed to change them."""

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- varlink
V = "org.promiscd.promisc"
varlink = {
    "getinfo": '{"method":"org.varlink.service.GetInfo"}\0',
    "describe": '{"method":"org.varlink.service.GetInterfaceDescription",'
                '"parameters":{"interface":"org.promiscd.promisc"}}\0',
    "acquire": '{"method":"%s.Acquire","parameters":{"interface":"eth0","ttl":60,'
               '"reason":"tcpdump","wait":true,"allowInteractiveAuthentication":true}}\0' % V,
    "acquire-more": '{"method":"%s.Acquire","parameters":{"interface":"veth\\\\x80"},"more":true}\0' % V,
    "capture": '{"method":"%s.OpenCapture","parameters":{"interface":"any","filter":"tcp port 80",'
               '"snaplen":96,"format":"pcap","promisc":false,"buffer_size":1048576,"count":10}}\0' % V,
    "lease-ops": ('{"method":"%s.Renew","parameters":{"id":1,"ttl":30}}\0'
                  '{"method":"%s.Release","parameters":{"id":1}}\0'
                  '{"method":"%s.Revoke","parameters":{"id":2,"reason":"maintenance"}}\0'
                  '{"method":"%s.StopCapture","parameters":{"id":3}}\0') % (V, V, V, V),
    "lists": ('{"method":"%s.ListLinks"}\0{"method":"%s.ListLeases","parameters":null}\0'
              '{"method":"%s.Monitor","more":true}\0') % (V, V, V),
    "policy": '{"method":"%s.SetLinkPolicy","parameters":{"interface":"br0","policy":"yield"}}\0' % V,
    "oneway": '{"method":"%s.Release","parameters":{"id":9},"oneway":true}\0'
              '{"method":"%s.ListLinks"}\0' % (V, V),
    "bad-types": '{"method":"%s.Acquire","parameters":{"interface":"eth0","ttl":-1,"tll":5}}\0'
                 '{"method":"%s.Renew","parameters":{"id":"1","ttl":1.5}}\0'
                 '{"method":5}\0[1,2]\0{"method":"%s.Monitor"}\0' % (V, V, V),
    "unknown": '{"method":"org.example.Nothing.Call"}\0{"method":"%s.Nothing"}\0'
               '{"method":"nodot"}\0' % V,
    "deep": '{"method":"%s.Acquire","parameters":{"interface":"eth0","reason":%s}}\0'
            % (V, "[" * 40 + "]" * 40),
    "no-nul": '{"method":"%s.ListLinks"}' % V,
    "not-json": '{"method":\0',
    "bad-name": '{"method":"%s.Acquire","parameters":{"interface":"a/b"}}\0'
                '{"method":"%s.Acquire","parameters":{"interface":"eth\\\\"}}\0' % (V, V),
}
for name, text in varlink.items():
    put("varlink", name, text)

# ---------------------------------------------------------------- D-Bus options
# FuzzedDataProvider input: the bytes only steer choices, any will do.
put("bus_options", "a", b"\x00eth0\x00reason\x01ttl\x05" + bytes(range(32)))
put("bus_options", "b", b"\x01any\x00filter\x00tcp\x01\x02" + bytes(range(255, 200, -1)))
put("bus_options", "c", bytes([i * 37 % 256 for i in range(96)]))

# ---------------------------------------------------------------- config
with open(os.path.join(HERE, "..", "..", "etc", "promiscd.json.example"), "rb") as f:
    put("config", "example", f.read())
put("config", "empty", "{}")
put("config", "static", '{"static_leases":[{"interface":"ids0","reason":"tap"},'
                        '{"interface":"eth\\u0000"}],"policies":[{"match":"","policy":"yield"}]}')
put("config", "ranges", '{"quotas":{"leases_per_uid":0},"conflict":{"window_seconds":99999},'
                        '"varlink":{"max_message_bytes":1.5},"bogus":1}')
put("config", "not-object", "[1, 2, 3]")

# ---------------------------------------------------------------- records
put("records", "lease",
    '{"version":2,"id":7,"interface":"eth0","owner":{"transport":"dbus","id":":1.42",'
    '"uid":1000,"pid":4242,"command":"wireshark"},"reason":"debugging","acquired":123456789,'
    '"capture":false,"expires":999999999}\n')
put("records", "escaped",
    '{"version":2,"id":1,"interface":"veth\\\\x80\\\\\\\\","owner":{"transport":"varlink",'
    '"id":"3","uid":0,"pid":1,"command":"promiscctl"},"reason":"","acquired":0,"capture":true}\n')
put("records", "future", '{"version":3,"id":7}')
put("records", "wrong-types",
    '{"version":2,"id":7,"interface":"eth0","owner":{"transport":"dbus","id":":1.42",'
    '"uid":-1,"pid":1.5,"command":"x"},"reason":"r","acquired":1,"capture":false}')
put("records", "deep", '{"version":2,"x":[[[[[[1]]]]]]}')

# ---------------------------------------------------------------- rtnetlink
RTM_NEWLINK, RTM_DELLINK, NLMSG_DONE = 16, 17, 3
IFLA_IFNAME, IFLA_OPERSTATE, IFLA_PROMISCUITY, IFLA_MTU = 3, 16, 30, 4
IFF_UP, IFF_PROMISC = 0x1, 0x100


def attr(kind, payload):
    a = struct.pack("=HH", 4 + len(payload), kind) + payload
    return a + b"\0" * (-len(a) % 4)


def link(msg_type, index, name, flags=IFF_UP, family=0, promiscuity=None, operstate=6,
         extra=b""):
    body = struct.pack("=BxHiII", family, 1, index, flags, 0xffffffff)
    body += attr(IFLA_IFNAME, name + b"\0")
    body += attr(IFLA_MTU, struct.pack("=I", 1500))
    if promiscuity is not None:
        body += attr(IFLA_PROMISCUITY, struct.pack("=I", promiscuity))
    if operstate is not None:
        body += attr(IFLA_OPERSTATE, struct.pack("=B", operstate))
    body += extra
    return struct.pack("=IHHII", 16 + len(body), msg_type, 0, 0, 0) + body


put("link_message", "newlink", link(RTM_NEWLINK, 2, b"eth0", IFF_UP | IFF_PROMISC, promiscuity=1))
put("link_message", "dellink", link(RTM_DELLINK, 7, b"veth1", promiscuity=0, operstate=None))
put("link_message", "bridge-port", link(RTM_NEWLINK, 3, b"tap0", family=7))
put("link_message", "several",
    link(RTM_NEWLINK, 1, b"lo", promiscuity=0) + link(RTM_NEWLINK, 9, b"br0", promiscuity=3)
    + struct.pack("=IHHIIi", 20, NLMSG_DONE, 2, 0, 0, 0))
put("link_message", "long-name", link(RTM_NEWLINK, 4, b"x" * 20))
put("link_message", "no-nul", link(RTM_NEWLINK, 5, b"eth0")[:-12] + attr(IFLA_IFNAME, b"eth0")[:8])
put("link_message", "short", link(RTM_NEWLINK, 6, b"eth6")[:30])

# ---------------------------------------------------------------- pcapng


def block(kind, body, be=False):
    e = ">" if be else "<"
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(e + "II", kind, n) + body + struct.pack(e + "I", n)


def opt(code, value, be=False):
    e = ">" if be else "<"
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def stream(be=False):
    e = ">" if be else "<"
    shb = block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1)
                + opt(4, b"promiscd", be) + opt(0, b"", be), be)
    idb = block(1, struct.pack(e + "HHI", 1, 0, 262144) + opt(2, b"eth0", be)
                + opt(9, b"\x09", be) + opt(11, b"\x00tcp", be) + opt(14, struct.pack(e + "q", 5), be)
                + opt(0, b"", be), be)
    frame = bytes(range(60))
    epb = block(6, struct.pack(e + "IIIII", 0, 0x17, 0x2A, len(frame), 64) + frame, be)
    spb = block(3, struct.pack(e + "I", 42) + frame[:42], be)
    isb = block(5, struct.pack(e + "III", 0, 0x17, 0x2B) + opt(4, struct.pack(e + "Q", 10), be)
                + opt(7, struct.pack(e + "Q", 1), be) + opt(0, b"", be), be)
    return shb + idb + epb + spb + isb


put("capture_stream", "little-endian", stream())
put("capture_stream", "big-endian", stream(True))
put("capture_stream", "truncated", stream()[:-7])
put("capture_stream", "microseconds",
    stream().replace(opt(9, b"\x09"), opt(9, b"\x86")))
put("capture_stream", "not-pcapng", b"\xd4\xc3\xb2\xa1" + b"\0" * 20)

# ---------------------------------------------------------------- pcapng round trip
put("pcapng_roundtrip", "a", bytes(range(64)) * 2)
put("pcapng_roundtrip", "b", b"\x01eth0\x00veth\x00" + bytes(range(200, 0, -3)))
put("pcapng_roundtrip", "c", bytes([i * 91 % 256 for i in range(400)]))

if __name__ == "__main__":
    print("seeds written under", CORPUS, file=sys.stderr)
