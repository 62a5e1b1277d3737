#!/usr/bin/env python3
"""Embed a text file as a C++ string constant: embed.py INPUT OUTPUT NAME"""
import sys

src, dst, name = sys.argv[1:4]
text = open(src, encoding="utf-8").read()
with open(dst, "w", encoding="utf-8") as out:
    out.write("// Generated from %s by embed.py; do not edit.\n#pragma once\n" % src.split("/")[-1])
    out.write("inline constexpr const char %s[] = R\"promiscd_embed(%s)promiscd_embed\";\n" % (name, text))
