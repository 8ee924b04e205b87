#!/usr/bin/env python3
"""Set an EEVDF slice (sched_attr.sched_runtime, SCHED_OTHER) on every thread of the given process names."""
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
SYS_sched_setattr = 314
slice_ns = int(sys.argv[1])
names = sys.argv[2:]
n = 0
for pid in os.listdir('/proc'):
    if not pid.isdigit():
        continue
    try:
        comm = open(f'/proc/{pid}/comm').read().strip()
        cmd = open(f'/proc/{pid}/cmdline').read()
    except OSError:
        continue
    if not any(name in cmd for name in names):
        continue
    for tid in os.listdir(f'/proc/{pid}/task'):
        # size, policy, flags, nice, priority, runtime, deadline, period
        attr = struct.pack('IIQiIQQQ', 48, 0, 0, 0, 0, slice_ns, 0, 0)
        buf = ctypes.create_string_buffer(attr)
        r = libc.syscall(SYS_sched_setattr, int(tid), buf, 0)
        if r != 0:
            print('tid', tid, 'errno', ctypes.get_errno())
        else:
            n += 1
print('threads set', n)
