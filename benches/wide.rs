//! Benchmark: one step that stores 1,000 small fields (a `u64` each), on the local store.
//!
//! ```text
//! BENCH_DIR=<directory> cargo bench -p flowlib-benches --bench wide -- [runs]   (default 5)
//! ```
//! Prints, for each run, the `start` task's store phase (encode, hash and store the 1,000
//! blobs, then commit) and the whole run. Each run uses a new seed, so every value is new
//! and every blob is written; the last line repeats seed 1 in the same process, where
//! nothing is new.
//! The struct is generated (1,000 fields named `f0`..`f999`).

use std::time::Instant;

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Wide {
    #[param(default = 0u64, help = "added to every value")]
    seed: u64,
    f0: u64,
    f1: u64,
    f2: u64,
    f3: u64,
    f4: u64,
    f5: u64,
    f6: u64,
    f7: u64,
    f8: u64,
    f9: u64,
    f10: u64,
    f11: u64,
    f12: u64,
    f13: u64,
    f14: u64,
    f15: u64,
    f16: u64,
    f17: u64,
    f18: u64,
    f19: u64,
    f20: u64,
    f21: u64,
    f22: u64,
    f23: u64,
    f24: u64,
    f25: u64,
    f26: u64,
    f27: u64,
    f28: u64,
    f29: u64,
    f30: u64,
    f31: u64,
    f32: u64,
    f33: u64,
    f34: u64,
    f35: u64,
    f36: u64,
    f37: u64,
    f38: u64,
    f39: u64,
    f40: u64,
    f41: u64,
    f42: u64,
    f43: u64,
    f44: u64,
    f45: u64,
    f46: u64,
    f47: u64,
    f48: u64,
    f49: u64,
    f50: u64,
    f51: u64,
    f52: u64,
    f53: u64,
    f54: u64,
    f55: u64,
    f56: u64,
    f57: u64,
    f58: u64,
    f59: u64,
    f60: u64,
    f61: u64,
    f62: u64,
    f63: u64,
    f64: u64,
    f65: u64,
    f66: u64,
    f67: u64,
    f68: u64,
    f69: u64,
    f70: u64,
    f71: u64,
    f72: u64,
    f73: u64,
    f74: u64,
    f75: u64,
    f76: u64,
    f77: u64,
    f78: u64,
    f79: u64,
    f80: u64,
    f81: u64,
    f82: u64,
    f83: u64,
    f84: u64,
    f85: u64,
    f86: u64,
    f87: u64,
    f88: u64,
    f89: u64,
    f90: u64,
    f91: u64,
    f92: u64,
    f93: u64,
    f94: u64,
    f95: u64,
    f96: u64,
    f97: u64,
    f98: u64,
    f99: u64,
    f100: u64,
    f101: u64,
    f102: u64,
    f103: u64,
    f104: u64,
    f105: u64,
    f106: u64,
    f107: u64,
    f108: u64,
    f109: u64,
    f110: u64,
    f111: u64,
    f112: u64,
    f113: u64,
    f114: u64,
    f115: u64,
    f116: u64,
    f117: u64,
    f118: u64,
    f119: u64,
    f120: u64,
    f121: u64,
    f122: u64,
    f123: u64,
    f124: u64,
    f125: u64,
    f126: u64,
    f127: u64,
    f128: u64,
    f129: u64,
    f130: u64,
    f131: u64,
    f132: u64,
    f133: u64,
    f134: u64,
    f135: u64,
    f136: u64,
    f137: u64,
    f138: u64,
    f139: u64,
    f140: u64,
    f141: u64,
    f142: u64,
    f143: u64,
    f144: u64,
    f145: u64,
    f146: u64,
    f147: u64,
    f148: u64,
    f149: u64,
    f150: u64,
    f151: u64,
    f152: u64,
    f153: u64,
    f154: u64,
    f155: u64,
    f156: u64,
    f157: u64,
    f158: u64,
    f159: u64,
    f160: u64,
    f161: u64,
    f162: u64,
    f163: u64,
    f164: u64,
    f165: u64,
    f166: u64,
    f167: u64,
    f168: u64,
    f169: u64,
    f170: u64,
    f171: u64,
    f172: u64,
    f173: u64,
    f174: u64,
    f175: u64,
    f176: u64,
    f177: u64,
    f178: u64,
    f179: u64,
    f180: u64,
    f181: u64,
    f182: u64,
    f183: u64,
    f184: u64,
    f185: u64,
    f186: u64,
    f187: u64,
    f188: u64,
    f189: u64,
    f190: u64,
    f191: u64,
    f192: u64,
    f193: u64,
    f194: u64,
    f195: u64,
    f196: u64,
    f197: u64,
    f198: u64,
    f199: u64,
    f200: u64,
    f201: u64,
    f202: u64,
    f203: u64,
    f204: u64,
    f205: u64,
    f206: u64,
    f207: u64,
    f208: u64,
    f209: u64,
    f210: u64,
    f211: u64,
    f212: u64,
    f213: u64,
    f214: u64,
    f215: u64,
    f216: u64,
    f217: u64,
    f218: u64,
    f219: u64,
    f220: u64,
    f221: u64,
    f222: u64,
    f223: u64,
    f224: u64,
    f225: u64,
    f226: u64,
    f227: u64,
    f228: u64,
    f229: u64,
    f230: u64,
    f231: u64,
    f232: u64,
    f233: u64,
    f234: u64,
    f235: u64,
    f236: u64,
    f237: u64,
    f238: u64,
    f239: u64,
    f240: u64,
    f241: u64,
    f242: u64,
    f243: u64,
    f244: u64,
    f245: u64,
    f246: u64,
    f247: u64,
    f248: u64,
    f249: u64,
    f250: u64,
    f251: u64,
    f252: u64,
    f253: u64,
    f254: u64,
    f255: u64,
    f256: u64,
    f257: u64,
    f258: u64,
    f259: u64,
    f260: u64,
    f261: u64,
    f262: u64,
    f263: u64,
    f264: u64,
    f265: u64,
    f266: u64,
    f267: u64,
    f268: u64,
    f269: u64,
    f270: u64,
    f271: u64,
    f272: u64,
    f273: u64,
    f274: u64,
    f275: u64,
    f276: u64,
    f277: u64,
    f278: u64,
    f279: u64,
    f280: u64,
    f281: u64,
    f282: u64,
    f283: u64,
    f284: u64,
    f285: u64,
    f286: u64,
    f287: u64,
    f288: u64,
    f289: u64,
    f290: u64,
    f291: u64,
    f292: u64,
    f293: u64,
    f294: u64,
    f295: u64,
    f296: u64,
    f297: u64,
    f298: u64,
    f299: u64,
    f300: u64,
    f301: u64,
    f302: u64,
    f303: u64,
    f304: u64,
    f305: u64,
    f306: u64,
    f307: u64,
    f308: u64,
    f309: u64,
    f310: u64,
    f311: u64,
    f312: u64,
    f313: u64,
    f314: u64,
    f315: u64,
    f316: u64,
    f317: u64,
    f318: u64,
    f319: u64,
    f320: u64,
    f321: u64,
    f322: u64,
    f323: u64,
    f324: u64,
    f325: u64,
    f326: u64,
    f327: u64,
    f328: u64,
    f329: u64,
    f330: u64,
    f331: u64,
    f332: u64,
    f333: u64,
    f334: u64,
    f335: u64,
    f336: u64,
    f337: u64,
    f338: u64,
    f339: u64,
    f340: u64,
    f341: u64,
    f342: u64,
    f343: u64,
    f344: u64,
    f345: u64,
    f346: u64,
    f347: u64,
    f348: u64,
    f349: u64,
    f350: u64,
    f351: u64,
    f352: u64,
    f353: u64,
    f354: u64,
    f355: u64,
    f356: u64,
    f357: u64,
    f358: u64,
    f359: u64,
    f360: u64,
    f361: u64,
    f362: u64,
    f363: u64,
    f364: u64,
    f365: u64,
    f366: u64,
    f367: u64,
    f368: u64,
    f369: u64,
    f370: u64,
    f371: u64,
    f372: u64,
    f373: u64,
    f374: u64,
    f375: u64,
    f376: u64,
    f377: u64,
    f378: u64,
    f379: u64,
    f380: u64,
    f381: u64,
    f382: u64,
    f383: u64,
    f384: u64,
    f385: u64,
    f386: u64,
    f387: u64,
    f388: u64,
    f389: u64,
    f390: u64,
    f391: u64,
    f392: u64,
    f393: u64,
    f394: u64,
    f395: u64,
    f396: u64,
    f397: u64,
    f398: u64,
    f399: u64,
    f400: u64,
    f401: u64,
    f402: u64,
    f403: u64,
    f404: u64,
    f405: u64,
    f406: u64,
    f407: u64,
    f408: u64,
    f409: u64,
    f410: u64,
    f411: u64,
    f412: u64,
    f413: u64,
    f414: u64,
    f415: u64,
    f416: u64,
    f417: u64,
    f418: u64,
    f419: u64,
    f420: u64,
    f421: u64,
    f422: u64,
    f423: u64,
    f424: u64,
    f425: u64,
    f426: u64,
    f427: u64,
    f428: u64,
    f429: u64,
    f430: u64,
    f431: u64,
    f432: u64,
    f433: u64,
    f434: u64,
    f435: u64,
    f436: u64,
    f437: u64,
    f438: u64,
    f439: u64,
    f440: u64,
    f441: u64,
    f442: u64,
    f443: u64,
    f444: u64,
    f445: u64,
    f446: u64,
    f447: u64,
    f448: u64,
    f449: u64,
    f450: u64,
    f451: u64,
    f452: u64,
    f453: u64,
    f454: u64,
    f455: u64,
    f456: u64,
    f457: u64,
    f458: u64,
    f459: u64,
    f460: u64,
    f461: u64,
    f462: u64,
    f463: u64,
    f464: u64,
    f465: u64,
    f466: u64,
    f467: u64,
    f468: u64,
    f469: u64,
    f470: u64,
    f471: u64,
    f472: u64,
    f473: u64,
    f474: u64,
    f475: u64,
    f476: u64,
    f477: u64,
    f478: u64,
    f479: u64,
    f480: u64,
    f481: u64,
    f482: u64,
    f483: u64,
    f484: u64,
    f485: u64,
    f486: u64,
    f487: u64,
    f488: u64,
    f489: u64,
    f490: u64,
    f491: u64,
    f492: u64,
    f493: u64,
    f494: u64,
    f495: u64,
    f496: u64,
    f497: u64,
    f498: u64,
    f499: u64,
    f500: u64,
    f501: u64,
    f502: u64,
    f503: u64,
    f504: u64,
    f505: u64,
    f506: u64,
    f507: u64,
    f508: u64,
    f509: u64,
    f510: u64,
    f511: u64,
    f512: u64,
    f513: u64,
    f514: u64,
    f515: u64,
    f516: u64,
    f517: u64,
    f518: u64,
    f519: u64,
    f520: u64,
    f521: u64,
    f522: u64,
    f523: u64,
    f524: u64,
    f525: u64,
    f526: u64,
    f527: u64,
    f528: u64,
    f529: u64,
    f530: u64,
    f531: u64,
    f532: u64,
    f533: u64,
    f534: u64,
    f535: u64,
    f536: u64,
    f537: u64,
    f538: u64,
    f539: u64,
    f540: u64,
    f541: u64,
    f542: u64,
    f543: u64,
    f544: u64,
    f545: u64,
    f546: u64,
    f547: u64,
    f548: u64,
    f549: u64,
    f550: u64,
    f551: u64,
    f552: u64,
    f553: u64,
    f554: u64,
    f555: u64,
    f556: u64,
    f557: u64,
    f558: u64,
    f559: u64,
    f560: u64,
    f561: u64,
    f562: u64,
    f563: u64,
    f564: u64,
    f565: u64,
    f566: u64,
    f567: u64,
    f568: u64,
    f569: u64,
    f570: u64,
    f571: u64,
    f572: u64,
    f573: u64,
    f574: u64,
    f575: u64,
    f576: u64,
    f577: u64,
    f578: u64,
    f579: u64,
    f580: u64,
    f581: u64,
    f582: u64,
    f583: u64,
    f584: u64,
    f585: u64,
    f586: u64,
    f587: u64,
    f588: u64,
    f589: u64,
    f590: u64,
    f591: u64,
    f592: u64,
    f593: u64,
    f594: u64,
    f595: u64,
    f596: u64,
    f597: u64,
    f598: u64,
    f599: u64,
    f600: u64,
    f601: u64,
    f602: u64,
    f603: u64,
    f604: u64,
    f605: u64,
    f606: u64,
    f607: u64,
    f608: u64,
    f609: u64,
    f610: u64,
    f611: u64,
    f612: u64,
    f613: u64,
    f614: u64,
    f615: u64,
    f616: u64,
    f617: u64,
    f618: u64,
    f619: u64,
    f620: u64,
    f621: u64,
    f622: u64,
    f623: u64,
    f624: u64,
    f625: u64,
    f626: u64,
    f627: u64,
    f628: u64,
    f629: u64,
    f630: u64,
    f631: u64,
    f632: u64,
    f633: u64,
    f634: u64,
    f635: u64,
    f636: u64,
    f637: u64,
    f638: u64,
    f639: u64,
    f640: u64,
    f641: u64,
    f642: u64,
    f643: u64,
    f644: u64,
    f645: u64,
    f646: u64,
    f647: u64,
    f648: u64,
    f649: u64,
    f650: u64,
    f651: u64,
    f652: u64,
    f653: u64,
    f654: u64,
    f655: u64,
    f656: u64,
    f657: u64,
    f658: u64,
    f659: u64,
    f660: u64,
    f661: u64,
    f662: u64,
    f663: u64,
    f664: u64,
    f665: u64,
    f666: u64,
    f667: u64,
    f668: u64,
    f669: u64,
    f670: u64,
    f671: u64,
    f672: u64,
    f673: u64,
    f674: u64,
    f675: u64,
    f676: u64,
    f677: u64,
    f678: u64,
    f679: u64,
    f680: u64,
    f681: u64,
    f682: u64,
    f683: u64,
    f684: u64,
    f685: u64,
    f686: u64,
    f687: u64,
    f688: u64,
    f689: u64,
    f690: u64,
    f691: u64,
    f692: u64,
    f693: u64,
    f694: u64,
    f695: u64,
    f696: u64,
    f697: u64,
    f698: u64,
    f699: u64,
    f700: u64,
    f701: u64,
    f702: u64,
    f703: u64,
    f704: u64,
    f705: u64,
    f706: u64,
    f707: u64,
    f708: u64,
    f709: u64,
    f710: u64,
    f711: u64,
    f712: u64,
    f713: u64,
    f714: u64,
    f715: u64,
    f716: u64,
    f717: u64,
    f718: u64,
    f719: u64,
    f720: u64,
    f721: u64,
    f722: u64,
    f723: u64,
    f724: u64,
    f725: u64,
    f726: u64,
    f727: u64,
    f728: u64,
    f729: u64,
    f730: u64,
    f731: u64,
    f732: u64,
    f733: u64,
    f734: u64,
    f735: u64,
    f736: u64,
    f737: u64,
    f738: u64,
    f739: u64,
    f740: u64,
    f741: u64,
    f742: u64,
    f743: u64,
    f744: u64,
    f745: u64,
    f746: u64,
    f747: u64,
    f748: u64,
    f749: u64,
    f750: u64,
    f751: u64,
    f752: u64,
    f753: u64,
    f754: u64,
    f755: u64,
    f756: u64,
    f757: u64,
    f758: u64,
    f759: u64,
    f760: u64,
    f761: u64,
    f762: u64,
    f763: u64,
    f764: u64,
    f765: u64,
    f766: u64,
    f767: u64,
    f768: u64,
    f769: u64,
    f770: u64,
    f771: u64,
    f772: u64,
    f773: u64,
    f774: u64,
    f775: u64,
    f776: u64,
    f777: u64,
    f778: u64,
    f779: u64,
    f780: u64,
    f781: u64,
    f782: u64,
    f783: u64,
    f784: u64,
    f785: u64,
    f786: u64,
    f787: u64,
    f788: u64,
    f789: u64,
    f790: u64,
    f791: u64,
    f792: u64,
    f793: u64,
    f794: u64,
    f795: u64,
    f796: u64,
    f797: u64,
    f798: u64,
    f799: u64,
    f800: u64,
    f801: u64,
    f802: u64,
    f803: u64,
    f804: u64,
    f805: u64,
    f806: u64,
    f807: u64,
    f808: u64,
    f809: u64,
    f810: u64,
    f811: u64,
    f812: u64,
    f813: u64,
    f814: u64,
    f815: u64,
    f816: u64,
    f817: u64,
    f818: u64,
    f819: u64,
    f820: u64,
    f821: u64,
    f822: u64,
    f823: u64,
    f824: u64,
    f825: u64,
    f826: u64,
    f827: u64,
    f828: u64,
    f829: u64,
    f830: u64,
    f831: u64,
    f832: u64,
    f833: u64,
    f834: u64,
    f835: u64,
    f836: u64,
    f837: u64,
    f838: u64,
    f839: u64,
    f840: u64,
    f841: u64,
    f842: u64,
    f843: u64,
    f844: u64,
    f845: u64,
    f846: u64,
    f847: u64,
    f848: u64,
    f849: u64,
    f850: u64,
    f851: u64,
    f852: u64,
    f853: u64,
    f854: u64,
    f855: u64,
    f856: u64,
    f857: u64,
    f858: u64,
    f859: u64,
    f860: u64,
    f861: u64,
    f862: u64,
    f863: u64,
    f864: u64,
    f865: u64,
    f866: u64,
    f867: u64,
    f868: u64,
    f869: u64,
    f870: u64,
    f871: u64,
    f872: u64,
    f873: u64,
    f874: u64,
    f875: u64,
    f876: u64,
    f877: u64,
    f878: u64,
    f879: u64,
    f880: u64,
    f881: u64,
    f882: u64,
    f883: u64,
    f884: u64,
    f885: u64,
    f886: u64,
    f887: u64,
    f888: u64,
    f889: u64,
    f890: u64,
    f891: u64,
    f892: u64,
    f893: u64,
    f894: u64,
    f895: u64,
    f896: u64,
    f897: u64,
    f898: u64,
    f899: u64,
    f900: u64,
    f901: u64,
    f902: u64,
    f903: u64,
    f904: u64,
    f905: u64,
    f906: u64,
    f907: u64,
    f908: u64,
    f909: u64,
    f910: u64,
    f911: u64,
    f912: u64,
    f913: u64,
    f914: u64,
    f915: u64,
    f916: u64,
    f917: u64,
    f918: u64,
    f919: u64,
    f920: u64,
    f921: u64,
    f922: u64,
    f923: u64,
    f924: u64,
    f925: u64,
    f926: u64,
    f927: u64,
    f928: u64,
    f929: u64,
    f930: u64,
    f931: u64,
    f932: u64,
    f933: u64,
    f934: u64,
    f935: u64,
    f936: u64,
    f937: u64,
    f938: u64,
    f939: u64,
    f940: u64,
    f941: u64,
    f942: u64,
    f943: u64,
    f944: u64,
    f945: u64,
    f946: u64,
    f947: u64,
    f948: u64,
    f949: u64,
    f950: u64,
    f951: u64,
    f952: u64,
    f953: u64,
    f954: u64,
    f955: u64,
    f956: u64,
    f957: u64,
    f958: u64,
    f959: u64,
    f960: u64,
    f961: u64,
    f962: u64,
    f963: u64,
    f964: u64,
    f965: u64,
    f966: u64,
    f967: u64,
    f968: u64,
    f969: u64,
    f970: u64,
    f971: u64,
    f972: u64,
    f973: u64,
    f974: u64,
    f975: u64,
    f976: u64,
    f977: u64,
    f978: u64,
    f979: u64,
    f980: u64,
    f981: u64,
    f982: u64,
    f983: u64,
    f984: u64,
    f985: u64,
    f986: u64,
    f987: u64,
    f988: u64,
    f989: u64,
    f990: u64,
    f991: u64,
    f992: u64,
    f993: u64,
    f994: u64,
    f995: u64,
    f996: u64,
    f997: u64,
    f998: u64,
    f999: u64,
}

#[flow]
impl Wide {
    #[step(start, next = end)]
    fn start(&mut self) -> Result<()> {
        self.f0 = self.seed;
        self.f1 = 1 + self.seed;
        self.f2 = 2 + self.seed;
        self.f3 = 3 + self.seed;
        self.f4 = 4 + self.seed;
        self.f5 = 5 + self.seed;
        self.f6 = 6 + self.seed;
        self.f7 = 7 + self.seed;
        self.f8 = 8 + self.seed;
        self.f9 = 9 + self.seed;
        self.f10 = 10 + self.seed;
        self.f11 = 11 + self.seed;
        self.f12 = 12 + self.seed;
        self.f13 = 13 + self.seed;
        self.f14 = 14 + self.seed;
        self.f15 = 15 + self.seed;
        self.f16 = 16 + self.seed;
        self.f17 = 17 + self.seed;
        self.f18 = 18 + self.seed;
        self.f19 = 19 + self.seed;
        self.f20 = 20 + self.seed;
        self.f21 = 21 + self.seed;
        self.f22 = 22 + self.seed;
        self.f23 = 23 + self.seed;
        self.f24 = 24 + self.seed;
        self.f25 = 25 + self.seed;
        self.f26 = 26 + self.seed;
        self.f27 = 27 + self.seed;
        self.f28 = 28 + self.seed;
        self.f29 = 29 + self.seed;
        self.f30 = 30 + self.seed;
        self.f31 = 31 + self.seed;
        self.f32 = 32 + self.seed;
        self.f33 = 33 + self.seed;
        self.f34 = 34 + self.seed;
        self.f35 = 35 + self.seed;
        self.f36 = 36 + self.seed;
        self.f37 = 37 + self.seed;
        self.f38 = 38 + self.seed;
        self.f39 = 39 + self.seed;
        self.f40 = 40 + self.seed;
        self.f41 = 41 + self.seed;
        self.f42 = 42 + self.seed;
        self.f43 = 43 + self.seed;
        self.f44 = 44 + self.seed;
        self.f45 = 45 + self.seed;
        self.f46 = 46 + self.seed;
        self.f47 = 47 + self.seed;
        self.f48 = 48 + self.seed;
        self.f49 = 49 + self.seed;
        self.f50 = 50 + self.seed;
        self.f51 = 51 + self.seed;
        self.f52 = 52 + self.seed;
        self.f53 = 53 + self.seed;
        self.f54 = 54 + self.seed;
        self.f55 = 55 + self.seed;
        self.f56 = 56 + self.seed;
        self.f57 = 57 + self.seed;
        self.f58 = 58 + self.seed;
        self.f59 = 59 + self.seed;
        self.f60 = 60 + self.seed;
        self.f61 = 61 + self.seed;
        self.f62 = 62 + self.seed;
        self.f63 = 63 + self.seed;
        self.f64 = 64 + self.seed;
        self.f65 = 65 + self.seed;
        self.f66 = 66 + self.seed;
        self.f67 = 67 + self.seed;
        self.f68 = 68 + self.seed;
        self.f69 = 69 + self.seed;
        self.f70 = 70 + self.seed;
        self.f71 = 71 + self.seed;
        self.f72 = 72 + self.seed;
        self.f73 = 73 + self.seed;
        self.f74 = 74 + self.seed;
        self.f75 = 75 + self.seed;
        self.f76 = 76 + self.seed;
        self.f77 = 77 + self.seed;
        self.f78 = 78 + self.seed;
        self.f79 = 79 + self.seed;
        self.f80 = 80 + self.seed;
        self.f81 = 81 + self.seed;
        self.f82 = 82 + self.seed;
        self.f83 = 83 + self.seed;
        self.f84 = 84 + self.seed;
        self.f85 = 85 + self.seed;
        self.f86 = 86 + self.seed;
        self.f87 = 87 + self.seed;
        self.f88 = 88 + self.seed;
        self.f89 = 89 + self.seed;
        self.f90 = 90 + self.seed;
        self.f91 = 91 + self.seed;
        self.f92 = 92 + self.seed;
        self.f93 = 93 + self.seed;
        self.f94 = 94 + self.seed;
        self.f95 = 95 + self.seed;
        self.f96 = 96 + self.seed;
        self.f97 = 97 + self.seed;
        self.f98 = 98 + self.seed;
        self.f99 = 99 + self.seed;
        self.f100 = 100 + self.seed;
        self.f101 = 101 + self.seed;
        self.f102 = 102 + self.seed;
        self.f103 = 103 + self.seed;
        self.f104 = 104 + self.seed;
        self.f105 = 105 + self.seed;
        self.f106 = 106 + self.seed;
        self.f107 = 107 + self.seed;
        self.f108 = 108 + self.seed;
        self.f109 = 109 + self.seed;
        self.f110 = 110 + self.seed;
        self.f111 = 111 + self.seed;
        self.f112 = 112 + self.seed;
        self.f113 = 113 + self.seed;
        self.f114 = 114 + self.seed;
        self.f115 = 115 + self.seed;
        self.f116 = 116 + self.seed;
        self.f117 = 117 + self.seed;
        self.f118 = 118 + self.seed;
        self.f119 = 119 + self.seed;
        self.f120 = 120 + self.seed;
        self.f121 = 121 + self.seed;
        self.f122 = 122 + self.seed;
        self.f123 = 123 + self.seed;
        self.f124 = 124 + self.seed;
        self.f125 = 125 + self.seed;
        self.f126 = 126 + self.seed;
        self.f127 = 127 + self.seed;
        self.f128 = 128 + self.seed;
        self.f129 = 129 + self.seed;
        self.f130 = 130 + self.seed;
        self.f131 = 131 + self.seed;
        self.f132 = 132 + self.seed;
        self.f133 = 133 + self.seed;
        self.f134 = 134 + self.seed;
        self.f135 = 135 + self.seed;
        self.f136 = 136 + self.seed;
        self.f137 = 137 + self.seed;
        self.f138 = 138 + self.seed;
        self.f139 = 139 + self.seed;
        self.f140 = 140 + self.seed;
        self.f141 = 141 + self.seed;
        self.f142 = 142 + self.seed;
        self.f143 = 143 + self.seed;
        self.f144 = 144 + self.seed;
        self.f145 = 145 + self.seed;
        self.f146 = 146 + self.seed;
        self.f147 = 147 + self.seed;
        self.f148 = 148 + self.seed;
        self.f149 = 149 + self.seed;
        self.f150 = 150 + self.seed;
        self.f151 = 151 + self.seed;
        self.f152 = 152 + self.seed;
        self.f153 = 153 + self.seed;
        self.f154 = 154 + self.seed;
        self.f155 = 155 + self.seed;
        self.f156 = 156 + self.seed;
        self.f157 = 157 + self.seed;
        self.f158 = 158 + self.seed;
        self.f159 = 159 + self.seed;
        self.f160 = 160 + self.seed;
        self.f161 = 161 + self.seed;
        self.f162 = 162 + self.seed;
        self.f163 = 163 + self.seed;
        self.f164 = 164 + self.seed;
        self.f165 = 165 + self.seed;
        self.f166 = 166 + self.seed;
        self.f167 = 167 + self.seed;
        self.f168 = 168 + self.seed;
        self.f169 = 169 + self.seed;
        self.f170 = 170 + self.seed;
        self.f171 = 171 + self.seed;
        self.f172 = 172 + self.seed;
        self.f173 = 173 + self.seed;
        self.f174 = 174 + self.seed;
        self.f175 = 175 + self.seed;
        self.f176 = 176 + self.seed;
        self.f177 = 177 + self.seed;
        self.f178 = 178 + self.seed;
        self.f179 = 179 + self.seed;
        self.f180 = 180 + self.seed;
        self.f181 = 181 + self.seed;
        self.f182 = 182 + self.seed;
        self.f183 = 183 + self.seed;
        self.f184 = 184 + self.seed;
        self.f185 = 185 + self.seed;
        self.f186 = 186 + self.seed;
        self.f187 = 187 + self.seed;
        self.f188 = 188 + self.seed;
        self.f189 = 189 + self.seed;
        self.f190 = 190 + self.seed;
        self.f191 = 191 + self.seed;
        self.f192 = 192 + self.seed;
        self.f193 = 193 + self.seed;
        self.f194 = 194 + self.seed;
        self.f195 = 195 + self.seed;
        self.f196 = 196 + self.seed;
        self.f197 = 197 + self.seed;
        self.f198 = 198 + self.seed;
        self.f199 = 199 + self.seed;
        self.f200 = 200 + self.seed;
        self.f201 = 201 + self.seed;
        self.f202 = 202 + self.seed;
        self.f203 = 203 + self.seed;
        self.f204 = 204 + self.seed;
        self.f205 = 205 + self.seed;
        self.f206 = 206 + self.seed;
        self.f207 = 207 + self.seed;
        self.f208 = 208 + self.seed;
        self.f209 = 209 + self.seed;
        self.f210 = 210 + self.seed;
        self.f211 = 211 + self.seed;
        self.f212 = 212 + self.seed;
        self.f213 = 213 + self.seed;
        self.f214 = 214 + self.seed;
        self.f215 = 215 + self.seed;
        self.f216 = 216 + self.seed;
        self.f217 = 217 + self.seed;
        self.f218 = 218 + self.seed;
        self.f219 = 219 + self.seed;
        self.f220 = 220 + self.seed;
        self.f221 = 221 + self.seed;
        self.f222 = 222 + self.seed;
        self.f223 = 223 + self.seed;
        self.f224 = 224 + self.seed;
        self.f225 = 225 + self.seed;
        self.f226 = 226 + self.seed;
        self.f227 = 227 + self.seed;
        self.f228 = 228 + self.seed;
        self.f229 = 229 + self.seed;
        self.f230 = 230 + self.seed;
        self.f231 = 231 + self.seed;
        self.f232 = 232 + self.seed;
        self.f233 = 233 + self.seed;
        self.f234 = 234 + self.seed;
        self.f235 = 235 + self.seed;
        self.f236 = 236 + self.seed;
        self.f237 = 237 + self.seed;
        self.f238 = 238 + self.seed;
        self.f239 = 239 + self.seed;
        self.f240 = 240 + self.seed;
        self.f241 = 241 + self.seed;
        self.f242 = 242 + self.seed;
        self.f243 = 243 + self.seed;
        self.f244 = 244 + self.seed;
        self.f245 = 245 + self.seed;
        self.f246 = 246 + self.seed;
        self.f247 = 247 + self.seed;
        self.f248 = 248 + self.seed;
        self.f249 = 249 + self.seed;
        self.f250 = 250 + self.seed;
        self.f251 = 251 + self.seed;
        self.f252 = 252 + self.seed;
        self.f253 = 253 + self.seed;
        self.f254 = 254 + self.seed;
        self.f255 = 255 + self.seed;
        self.f256 = 256 + self.seed;
        self.f257 = 257 + self.seed;
        self.f258 = 258 + self.seed;
        self.f259 = 259 + self.seed;
        self.f260 = 260 + self.seed;
        self.f261 = 261 + self.seed;
        self.f262 = 262 + self.seed;
        self.f263 = 263 + self.seed;
        self.f264 = 264 + self.seed;
        self.f265 = 265 + self.seed;
        self.f266 = 266 + self.seed;
        self.f267 = 267 + self.seed;
        self.f268 = 268 + self.seed;
        self.f269 = 269 + self.seed;
        self.f270 = 270 + self.seed;
        self.f271 = 271 + self.seed;
        self.f272 = 272 + self.seed;
        self.f273 = 273 + self.seed;
        self.f274 = 274 + self.seed;
        self.f275 = 275 + self.seed;
        self.f276 = 276 + self.seed;
        self.f277 = 277 + self.seed;
        self.f278 = 278 + self.seed;
        self.f279 = 279 + self.seed;
        self.f280 = 280 + self.seed;
        self.f281 = 281 + self.seed;
        self.f282 = 282 + self.seed;
        self.f283 = 283 + self.seed;
        self.f284 = 284 + self.seed;
        self.f285 = 285 + self.seed;
        self.f286 = 286 + self.seed;
        self.f287 = 287 + self.seed;
        self.f288 = 288 + self.seed;
        self.f289 = 289 + self.seed;
        self.f290 = 290 + self.seed;
        self.f291 = 291 + self.seed;
        self.f292 = 292 + self.seed;
        self.f293 = 293 + self.seed;
        self.f294 = 294 + self.seed;
        self.f295 = 295 + self.seed;
        self.f296 = 296 + self.seed;
        self.f297 = 297 + self.seed;
        self.f298 = 298 + self.seed;
        self.f299 = 299 + self.seed;
        self.f300 = 300 + self.seed;
        self.f301 = 301 + self.seed;
        self.f302 = 302 + self.seed;
        self.f303 = 303 + self.seed;
        self.f304 = 304 + self.seed;
        self.f305 = 305 + self.seed;
        self.f306 = 306 + self.seed;
        self.f307 = 307 + self.seed;
        self.f308 = 308 + self.seed;
        self.f309 = 309 + self.seed;
        self.f310 = 310 + self.seed;
        self.f311 = 311 + self.seed;
        self.f312 = 312 + self.seed;
        self.f313 = 313 + self.seed;
        self.f314 = 314 + self.seed;
        self.f315 = 315 + self.seed;
        self.f316 = 316 + self.seed;
        self.f317 = 317 + self.seed;
        self.f318 = 318 + self.seed;
        self.f319 = 319 + self.seed;
        self.f320 = 320 + self.seed;
        self.f321 = 321 + self.seed;
        self.f322 = 322 + self.seed;
        self.f323 = 323 + self.seed;
        self.f324 = 324 + self.seed;
        self.f325 = 325 + self.seed;
        self.f326 = 326 + self.seed;
        self.f327 = 327 + self.seed;
        self.f328 = 328 + self.seed;
        self.f329 = 329 + self.seed;
        self.f330 = 330 + self.seed;
        self.f331 = 331 + self.seed;
        self.f332 = 332 + self.seed;
        self.f333 = 333 + self.seed;
        self.f334 = 334 + self.seed;
        self.f335 = 335 + self.seed;
        self.f336 = 336 + self.seed;
        self.f337 = 337 + self.seed;
        self.f338 = 338 + self.seed;
        self.f339 = 339 + self.seed;
        self.f340 = 340 + self.seed;
        self.f341 = 341 + self.seed;
        self.f342 = 342 + self.seed;
        self.f343 = 343 + self.seed;
        self.f344 = 344 + self.seed;
        self.f345 = 345 + self.seed;
        self.f346 = 346 + self.seed;
        self.f347 = 347 + self.seed;
        self.f348 = 348 + self.seed;
        self.f349 = 349 + self.seed;
        self.f350 = 350 + self.seed;
        self.f351 = 351 + self.seed;
        self.f352 = 352 + self.seed;
        self.f353 = 353 + self.seed;
        self.f354 = 354 + self.seed;
        self.f355 = 355 + self.seed;
        self.f356 = 356 + self.seed;
        self.f357 = 357 + self.seed;
        self.f358 = 358 + self.seed;
        self.f359 = 359 + self.seed;
        self.f360 = 360 + self.seed;
        self.f361 = 361 + self.seed;
        self.f362 = 362 + self.seed;
        self.f363 = 363 + self.seed;
        self.f364 = 364 + self.seed;
        self.f365 = 365 + self.seed;
        self.f366 = 366 + self.seed;
        self.f367 = 367 + self.seed;
        self.f368 = 368 + self.seed;
        self.f369 = 369 + self.seed;
        self.f370 = 370 + self.seed;
        self.f371 = 371 + self.seed;
        self.f372 = 372 + self.seed;
        self.f373 = 373 + self.seed;
        self.f374 = 374 + self.seed;
        self.f375 = 375 + self.seed;
        self.f376 = 376 + self.seed;
        self.f377 = 377 + self.seed;
        self.f378 = 378 + self.seed;
        self.f379 = 379 + self.seed;
        self.f380 = 380 + self.seed;
        self.f381 = 381 + self.seed;
        self.f382 = 382 + self.seed;
        self.f383 = 383 + self.seed;
        self.f384 = 384 + self.seed;
        self.f385 = 385 + self.seed;
        self.f386 = 386 + self.seed;
        self.f387 = 387 + self.seed;
        self.f388 = 388 + self.seed;
        self.f389 = 389 + self.seed;
        self.f390 = 390 + self.seed;
        self.f391 = 391 + self.seed;
        self.f392 = 392 + self.seed;
        self.f393 = 393 + self.seed;
        self.f394 = 394 + self.seed;
        self.f395 = 395 + self.seed;
        self.f396 = 396 + self.seed;
        self.f397 = 397 + self.seed;
        self.f398 = 398 + self.seed;
        self.f399 = 399 + self.seed;
        self.f400 = 400 + self.seed;
        self.f401 = 401 + self.seed;
        self.f402 = 402 + self.seed;
        self.f403 = 403 + self.seed;
        self.f404 = 404 + self.seed;
        self.f405 = 405 + self.seed;
        self.f406 = 406 + self.seed;
        self.f407 = 407 + self.seed;
        self.f408 = 408 + self.seed;
        self.f409 = 409 + self.seed;
        self.f410 = 410 + self.seed;
        self.f411 = 411 + self.seed;
        self.f412 = 412 + self.seed;
        self.f413 = 413 + self.seed;
        self.f414 = 414 + self.seed;
        self.f415 = 415 + self.seed;
        self.f416 = 416 + self.seed;
        self.f417 = 417 + self.seed;
        self.f418 = 418 + self.seed;
        self.f419 = 419 + self.seed;
        self.f420 = 420 + self.seed;
        self.f421 = 421 + self.seed;
        self.f422 = 422 + self.seed;
        self.f423 = 423 + self.seed;
        self.f424 = 424 + self.seed;
        self.f425 = 425 + self.seed;
        self.f426 = 426 + self.seed;
        self.f427 = 427 + self.seed;
        self.f428 = 428 + self.seed;
        self.f429 = 429 + self.seed;
        self.f430 = 430 + self.seed;
        self.f431 = 431 + self.seed;
        self.f432 = 432 + self.seed;
        self.f433 = 433 + self.seed;
        self.f434 = 434 + self.seed;
        self.f435 = 435 + self.seed;
        self.f436 = 436 + self.seed;
        self.f437 = 437 + self.seed;
        self.f438 = 438 + self.seed;
        self.f439 = 439 + self.seed;
        self.f440 = 440 + self.seed;
        self.f441 = 441 + self.seed;
        self.f442 = 442 + self.seed;
        self.f443 = 443 + self.seed;
        self.f444 = 444 + self.seed;
        self.f445 = 445 + self.seed;
        self.f446 = 446 + self.seed;
        self.f447 = 447 + self.seed;
        self.f448 = 448 + self.seed;
        self.f449 = 449 + self.seed;
        self.f450 = 450 + self.seed;
        self.f451 = 451 + self.seed;
        self.f452 = 452 + self.seed;
        self.f453 = 453 + self.seed;
        self.f454 = 454 + self.seed;
        self.f455 = 455 + self.seed;
        self.f456 = 456 + self.seed;
        self.f457 = 457 + self.seed;
        self.f458 = 458 + self.seed;
        self.f459 = 459 + self.seed;
        self.f460 = 460 + self.seed;
        self.f461 = 461 + self.seed;
        self.f462 = 462 + self.seed;
        self.f463 = 463 + self.seed;
        self.f464 = 464 + self.seed;
        self.f465 = 465 + self.seed;
        self.f466 = 466 + self.seed;
        self.f467 = 467 + self.seed;
        self.f468 = 468 + self.seed;
        self.f469 = 469 + self.seed;
        self.f470 = 470 + self.seed;
        self.f471 = 471 + self.seed;
        self.f472 = 472 + self.seed;
        self.f473 = 473 + self.seed;
        self.f474 = 474 + self.seed;
        self.f475 = 475 + self.seed;
        self.f476 = 476 + self.seed;
        self.f477 = 477 + self.seed;
        self.f478 = 478 + self.seed;
        self.f479 = 479 + self.seed;
        self.f480 = 480 + self.seed;
        self.f481 = 481 + self.seed;
        self.f482 = 482 + self.seed;
        self.f483 = 483 + self.seed;
        self.f484 = 484 + self.seed;
        self.f485 = 485 + self.seed;
        self.f486 = 486 + self.seed;
        self.f487 = 487 + self.seed;
        self.f488 = 488 + self.seed;
        self.f489 = 489 + self.seed;
        self.f490 = 490 + self.seed;
        self.f491 = 491 + self.seed;
        self.f492 = 492 + self.seed;
        self.f493 = 493 + self.seed;
        self.f494 = 494 + self.seed;
        self.f495 = 495 + self.seed;
        self.f496 = 496 + self.seed;
        self.f497 = 497 + self.seed;
        self.f498 = 498 + self.seed;
        self.f499 = 499 + self.seed;
        self.f500 = 500 + self.seed;
        self.f501 = 501 + self.seed;
        self.f502 = 502 + self.seed;
        self.f503 = 503 + self.seed;
        self.f504 = 504 + self.seed;
        self.f505 = 505 + self.seed;
        self.f506 = 506 + self.seed;
        self.f507 = 507 + self.seed;
        self.f508 = 508 + self.seed;
        self.f509 = 509 + self.seed;
        self.f510 = 510 + self.seed;
        self.f511 = 511 + self.seed;
        self.f512 = 512 + self.seed;
        self.f513 = 513 + self.seed;
        self.f514 = 514 + self.seed;
        self.f515 = 515 + self.seed;
        self.f516 = 516 + self.seed;
        self.f517 = 517 + self.seed;
        self.f518 = 518 + self.seed;
        self.f519 = 519 + self.seed;
        self.f520 = 520 + self.seed;
        self.f521 = 521 + self.seed;
        self.f522 = 522 + self.seed;
        self.f523 = 523 + self.seed;
        self.f524 = 524 + self.seed;
        self.f525 = 525 + self.seed;
        self.f526 = 526 + self.seed;
        self.f527 = 527 + self.seed;
        self.f528 = 528 + self.seed;
        self.f529 = 529 + self.seed;
        self.f530 = 530 + self.seed;
        self.f531 = 531 + self.seed;
        self.f532 = 532 + self.seed;
        self.f533 = 533 + self.seed;
        self.f534 = 534 + self.seed;
        self.f535 = 535 + self.seed;
        self.f536 = 536 + self.seed;
        self.f537 = 537 + self.seed;
        self.f538 = 538 + self.seed;
        self.f539 = 539 + self.seed;
        self.f540 = 540 + self.seed;
        self.f541 = 541 + self.seed;
        self.f542 = 542 + self.seed;
        self.f543 = 543 + self.seed;
        self.f544 = 544 + self.seed;
        self.f545 = 545 + self.seed;
        self.f546 = 546 + self.seed;
        self.f547 = 547 + self.seed;
        self.f548 = 548 + self.seed;
        self.f549 = 549 + self.seed;
        self.f550 = 550 + self.seed;
        self.f551 = 551 + self.seed;
        self.f552 = 552 + self.seed;
        self.f553 = 553 + self.seed;
        self.f554 = 554 + self.seed;
        self.f555 = 555 + self.seed;
        self.f556 = 556 + self.seed;
        self.f557 = 557 + self.seed;
        self.f558 = 558 + self.seed;
        self.f559 = 559 + self.seed;
        self.f560 = 560 + self.seed;
        self.f561 = 561 + self.seed;
        self.f562 = 562 + self.seed;
        self.f563 = 563 + self.seed;
        self.f564 = 564 + self.seed;
        self.f565 = 565 + self.seed;
        self.f566 = 566 + self.seed;
        self.f567 = 567 + self.seed;
        self.f568 = 568 + self.seed;
        self.f569 = 569 + self.seed;
        self.f570 = 570 + self.seed;
        self.f571 = 571 + self.seed;
        self.f572 = 572 + self.seed;
        self.f573 = 573 + self.seed;
        self.f574 = 574 + self.seed;
        self.f575 = 575 + self.seed;
        self.f576 = 576 + self.seed;
        self.f577 = 577 + self.seed;
        self.f578 = 578 + self.seed;
        self.f579 = 579 + self.seed;
        self.f580 = 580 + self.seed;
        self.f581 = 581 + self.seed;
        self.f582 = 582 + self.seed;
        self.f583 = 583 + self.seed;
        self.f584 = 584 + self.seed;
        self.f585 = 585 + self.seed;
        self.f586 = 586 + self.seed;
        self.f587 = 587 + self.seed;
        self.f588 = 588 + self.seed;
        self.f589 = 589 + self.seed;
        self.f590 = 590 + self.seed;
        self.f591 = 591 + self.seed;
        self.f592 = 592 + self.seed;
        self.f593 = 593 + self.seed;
        self.f594 = 594 + self.seed;
        self.f595 = 595 + self.seed;
        self.f596 = 596 + self.seed;
        self.f597 = 597 + self.seed;
        self.f598 = 598 + self.seed;
        self.f599 = 599 + self.seed;
        self.f600 = 600 + self.seed;
        self.f601 = 601 + self.seed;
        self.f602 = 602 + self.seed;
        self.f603 = 603 + self.seed;
        self.f604 = 604 + self.seed;
        self.f605 = 605 + self.seed;
        self.f606 = 606 + self.seed;
        self.f607 = 607 + self.seed;
        self.f608 = 608 + self.seed;
        self.f609 = 609 + self.seed;
        self.f610 = 610 + self.seed;
        self.f611 = 611 + self.seed;
        self.f612 = 612 + self.seed;
        self.f613 = 613 + self.seed;
        self.f614 = 614 + self.seed;
        self.f615 = 615 + self.seed;
        self.f616 = 616 + self.seed;
        self.f617 = 617 + self.seed;
        self.f618 = 618 + self.seed;
        self.f619 = 619 + self.seed;
        self.f620 = 620 + self.seed;
        self.f621 = 621 + self.seed;
        self.f622 = 622 + self.seed;
        self.f623 = 623 + self.seed;
        self.f624 = 624 + self.seed;
        self.f625 = 625 + self.seed;
        self.f626 = 626 + self.seed;
        self.f627 = 627 + self.seed;
        self.f628 = 628 + self.seed;
        self.f629 = 629 + self.seed;
        self.f630 = 630 + self.seed;
        self.f631 = 631 + self.seed;
        self.f632 = 632 + self.seed;
        self.f633 = 633 + self.seed;
        self.f634 = 634 + self.seed;
        self.f635 = 635 + self.seed;
        self.f636 = 636 + self.seed;
        self.f637 = 637 + self.seed;
        self.f638 = 638 + self.seed;
        self.f639 = 639 + self.seed;
        self.f640 = 640 + self.seed;
        self.f641 = 641 + self.seed;
        self.f642 = 642 + self.seed;
        self.f643 = 643 + self.seed;
        self.f644 = 644 + self.seed;
        self.f645 = 645 + self.seed;
        self.f646 = 646 + self.seed;
        self.f647 = 647 + self.seed;
        self.f648 = 648 + self.seed;
        self.f649 = 649 + self.seed;
        self.f650 = 650 + self.seed;
        self.f651 = 651 + self.seed;
        self.f652 = 652 + self.seed;
        self.f653 = 653 + self.seed;
        self.f654 = 654 + self.seed;
        self.f655 = 655 + self.seed;
        self.f656 = 656 + self.seed;
        self.f657 = 657 + self.seed;
        self.f658 = 658 + self.seed;
        self.f659 = 659 + self.seed;
        self.f660 = 660 + self.seed;
        self.f661 = 661 + self.seed;
        self.f662 = 662 + self.seed;
        self.f663 = 663 + self.seed;
        self.f664 = 664 + self.seed;
        self.f665 = 665 + self.seed;
        self.f666 = 666 + self.seed;
        self.f667 = 667 + self.seed;
        self.f668 = 668 + self.seed;
        self.f669 = 669 + self.seed;
        self.f670 = 670 + self.seed;
        self.f671 = 671 + self.seed;
        self.f672 = 672 + self.seed;
        self.f673 = 673 + self.seed;
        self.f674 = 674 + self.seed;
        self.f675 = 675 + self.seed;
        self.f676 = 676 + self.seed;
        self.f677 = 677 + self.seed;
        self.f678 = 678 + self.seed;
        self.f679 = 679 + self.seed;
        self.f680 = 680 + self.seed;
        self.f681 = 681 + self.seed;
        self.f682 = 682 + self.seed;
        self.f683 = 683 + self.seed;
        self.f684 = 684 + self.seed;
        self.f685 = 685 + self.seed;
        self.f686 = 686 + self.seed;
        self.f687 = 687 + self.seed;
        self.f688 = 688 + self.seed;
        self.f689 = 689 + self.seed;
        self.f690 = 690 + self.seed;
        self.f691 = 691 + self.seed;
        self.f692 = 692 + self.seed;
        self.f693 = 693 + self.seed;
        self.f694 = 694 + self.seed;
        self.f695 = 695 + self.seed;
        self.f696 = 696 + self.seed;
        self.f697 = 697 + self.seed;
        self.f698 = 698 + self.seed;
        self.f699 = 699 + self.seed;
        self.f700 = 700 + self.seed;
        self.f701 = 701 + self.seed;
        self.f702 = 702 + self.seed;
        self.f703 = 703 + self.seed;
        self.f704 = 704 + self.seed;
        self.f705 = 705 + self.seed;
        self.f706 = 706 + self.seed;
        self.f707 = 707 + self.seed;
        self.f708 = 708 + self.seed;
        self.f709 = 709 + self.seed;
        self.f710 = 710 + self.seed;
        self.f711 = 711 + self.seed;
        self.f712 = 712 + self.seed;
        self.f713 = 713 + self.seed;
        self.f714 = 714 + self.seed;
        self.f715 = 715 + self.seed;
        self.f716 = 716 + self.seed;
        self.f717 = 717 + self.seed;
        self.f718 = 718 + self.seed;
        self.f719 = 719 + self.seed;
        self.f720 = 720 + self.seed;
        self.f721 = 721 + self.seed;
        self.f722 = 722 + self.seed;
        self.f723 = 723 + self.seed;
        self.f724 = 724 + self.seed;
        self.f725 = 725 + self.seed;
        self.f726 = 726 + self.seed;
        self.f727 = 727 + self.seed;
        self.f728 = 728 + self.seed;
        self.f729 = 729 + self.seed;
        self.f730 = 730 + self.seed;
        self.f731 = 731 + self.seed;
        self.f732 = 732 + self.seed;
        self.f733 = 733 + self.seed;
        self.f734 = 734 + self.seed;
        self.f735 = 735 + self.seed;
        self.f736 = 736 + self.seed;
        self.f737 = 737 + self.seed;
        self.f738 = 738 + self.seed;
        self.f739 = 739 + self.seed;
        self.f740 = 740 + self.seed;
        self.f741 = 741 + self.seed;
        self.f742 = 742 + self.seed;
        self.f743 = 743 + self.seed;
        self.f744 = 744 + self.seed;
        self.f745 = 745 + self.seed;
        self.f746 = 746 + self.seed;
        self.f747 = 747 + self.seed;
        self.f748 = 748 + self.seed;
        self.f749 = 749 + self.seed;
        self.f750 = 750 + self.seed;
        self.f751 = 751 + self.seed;
        self.f752 = 752 + self.seed;
        self.f753 = 753 + self.seed;
        self.f754 = 754 + self.seed;
        self.f755 = 755 + self.seed;
        self.f756 = 756 + self.seed;
        self.f757 = 757 + self.seed;
        self.f758 = 758 + self.seed;
        self.f759 = 759 + self.seed;
        self.f760 = 760 + self.seed;
        self.f761 = 761 + self.seed;
        self.f762 = 762 + self.seed;
        self.f763 = 763 + self.seed;
        self.f764 = 764 + self.seed;
        self.f765 = 765 + self.seed;
        self.f766 = 766 + self.seed;
        self.f767 = 767 + self.seed;
        self.f768 = 768 + self.seed;
        self.f769 = 769 + self.seed;
        self.f770 = 770 + self.seed;
        self.f771 = 771 + self.seed;
        self.f772 = 772 + self.seed;
        self.f773 = 773 + self.seed;
        self.f774 = 774 + self.seed;
        self.f775 = 775 + self.seed;
        self.f776 = 776 + self.seed;
        self.f777 = 777 + self.seed;
        self.f778 = 778 + self.seed;
        self.f779 = 779 + self.seed;
        self.f780 = 780 + self.seed;
        self.f781 = 781 + self.seed;
        self.f782 = 782 + self.seed;
        self.f783 = 783 + self.seed;
        self.f784 = 784 + self.seed;
        self.f785 = 785 + self.seed;
        self.f786 = 786 + self.seed;
        self.f787 = 787 + self.seed;
        self.f788 = 788 + self.seed;
        self.f789 = 789 + self.seed;
        self.f790 = 790 + self.seed;
        self.f791 = 791 + self.seed;
        self.f792 = 792 + self.seed;
        self.f793 = 793 + self.seed;
        self.f794 = 794 + self.seed;
        self.f795 = 795 + self.seed;
        self.f796 = 796 + self.seed;
        self.f797 = 797 + self.seed;
        self.f798 = 798 + self.seed;
        self.f799 = 799 + self.seed;
        self.f800 = 800 + self.seed;
        self.f801 = 801 + self.seed;
        self.f802 = 802 + self.seed;
        self.f803 = 803 + self.seed;
        self.f804 = 804 + self.seed;
        self.f805 = 805 + self.seed;
        self.f806 = 806 + self.seed;
        self.f807 = 807 + self.seed;
        self.f808 = 808 + self.seed;
        self.f809 = 809 + self.seed;
        self.f810 = 810 + self.seed;
        self.f811 = 811 + self.seed;
        self.f812 = 812 + self.seed;
        self.f813 = 813 + self.seed;
        self.f814 = 814 + self.seed;
        self.f815 = 815 + self.seed;
        self.f816 = 816 + self.seed;
        self.f817 = 817 + self.seed;
        self.f818 = 818 + self.seed;
        self.f819 = 819 + self.seed;
        self.f820 = 820 + self.seed;
        self.f821 = 821 + self.seed;
        self.f822 = 822 + self.seed;
        self.f823 = 823 + self.seed;
        self.f824 = 824 + self.seed;
        self.f825 = 825 + self.seed;
        self.f826 = 826 + self.seed;
        self.f827 = 827 + self.seed;
        self.f828 = 828 + self.seed;
        self.f829 = 829 + self.seed;
        self.f830 = 830 + self.seed;
        self.f831 = 831 + self.seed;
        self.f832 = 832 + self.seed;
        self.f833 = 833 + self.seed;
        self.f834 = 834 + self.seed;
        self.f835 = 835 + self.seed;
        self.f836 = 836 + self.seed;
        self.f837 = 837 + self.seed;
        self.f838 = 838 + self.seed;
        self.f839 = 839 + self.seed;
        self.f840 = 840 + self.seed;
        self.f841 = 841 + self.seed;
        self.f842 = 842 + self.seed;
        self.f843 = 843 + self.seed;
        self.f844 = 844 + self.seed;
        self.f845 = 845 + self.seed;
        self.f846 = 846 + self.seed;
        self.f847 = 847 + self.seed;
        self.f848 = 848 + self.seed;
        self.f849 = 849 + self.seed;
        self.f850 = 850 + self.seed;
        self.f851 = 851 + self.seed;
        self.f852 = 852 + self.seed;
        self.f853 = 853 + self.seed;
        self.f854 = 854 + self.seed;
        self.f855 = 855 + self.seed;
        self.f856 = 856 + self.seed;
        self.f857 = 857 + self.seed;
        self.f858 = 858 + self.seed;
        self.f859 = 859 + self.seed;
        self.f860 = 860 + self.seed;
        self.f861 = 861 + self.seed;
        self.f862 = 862 + self.seed;
        self.f863 = 863 + self.seed;
        self.f864 = 864 + self.seed;
        self.f865 = 865 + self.seed;
        self.f866 = 866 + self.seed;
        self.f867 = 867 + self.seed;
        self.f868 = 868 + self.seed;
        self.f869 = 869 + self.seed;
        self.f870 = 870 + self.seed;
        self.f871 = 871 + self.seed;
        self.f872 = 872 + self.seed;
        self.f873 = 873 + self.seed;
        self.f874 = 874 + self.seed;
        self.f875 = 875 + self.seed;
        self.f876 = 876 + self.seed;
        self.f877 = 877 + self.seed;
        self.f878 = 878 + self.seed;
        self.f879 = 879 + self.seed;
        self.f880 = 880 + self.seed;
        self.f881 = 881 + self.seed;
        self.f882 = 882 + self.seed;
        self.f883 = 883 + self.seed;
        self.f884 = 884 + self.seed;
        self.f885 = 885 + self.seed;
        self.f886 = 886 + self.seed;
        self.f887 = 887 + self.seed;
        self.f888 = 888 + self.seed;
        self.f889 = 889 + self.seed;
        self.f890 = 890 + self.seed;
        self.f891 = 891 + self.seed;
        self.f892 = 892 + self.seed;
        self.f893 = 893 + self.seed;
        self.f894 = 894 + self.seed;
        self.f895 = 895 + self.seed;
        self.f896 = 896 + self.seed;
        self.f897 = 897 + self.seed;
        self.f898 = 898 + self.seed;
        self.f899 = 899 + self.seed;
        self.f900 = 900 + self.seed;
        self.f901 = 901 + self.seed;
        self.f902 = 902 + self.seed;
        self.f903 = 903 + self.seed;
        self.f904 = 904 + self.seed;
        self.f905 = 905 + self.seed;
        self.f906 = 906 + self.seed;
        self.f907 = 907 + self.seed;
        self.f908 = 908 + self.seed;
        self.f909 = 909 + self.seed;
        self.f910 = 910 + self.seed;
        self.f911 = 911 + self.seed;
        self.f912 = 912 + self.seed;
        self.f913 = 913 + self.seed;
        self.f914 = 914 + self.seed;
        self.f915 = 915 + self.seed;
        self.f916 = 916 + self.seed;
        self.f917 = 917 + self.seed;
        self.f918 = 918 + self.seed;
        self.f919 = 919 + self.seed;
        self.f920 = 920 + self.seed;
        self.f921 = 921 + self.seed;
        self.f922 = 922 + self.seed;
        self.f923 = 923 + self.seed;
        self.f924 = 924 + self.seed;
        self.f925 = 925 + self.seed;
        self.f926 = 926 + self.seed;
        self.f927 = 927 + self.seed;
        self.f928 = 928 + self.seed;
        self.f929 = 929 + self.seed;
        self.f930 = 930 + self.seed;
        self.f931 = 931 + self.seed;
        self.f932 = 932 + self.seed;
        self.f933 = 933 + self.seed;
        self.f934 = 934 + self.seed;
        self.f935 = 935 + self.seed;
        self.f936 = 936 + self.seed;
        self.f937 = 937 + self.seed;
        self.f938 = 938 + self.seed;
        self.f939 = 939 + self.seed;
        self.f940 = 940 + self.seed;
        self.f941 = 941 + self.seed;
        self.f942 = 942 + self.seed;
        self.f943 = 943 + self.seed;
        self.f944 = 944 + self.seed;
        self.f945 = 945 + self.seed;
        self.f946 = 946 + self.seed;
        self.f947 = 947 + self.seed;
        self.f948 = 948 + self.seed;
        self.f949 = 949 + self.seed;
        self.f950 = 950 + self.seed;
        self.f951 = 951 + self.seed;
        self.f952 = 952 + self.seed;
        self.f953 = 953 + self.seed;
        self.f954 = 954 + self.seed;
        self.f955 = 955 + self.seed;
        self.f956 = 956 + self.seed;
        self.f957 = 957 + self.seed;
        self.f958 = 958 + self.seed;
        self.f959 = 959 + self.seed;
        self.f960 = 960 + self.seed;
        self.f961 = 961 + self.seed;
        self.f962 = 962 + self.seed;
        self.f963 = 963 + self.seed;
        self.f964 = 964 + self.seed;
        self.f965 = 965 + self.seed;
        self.f966 = 966 + self.seed;
        self.f967 = 967 + self.seed;
        self.f968 = 968 + self.seed;
        self.f969 = 969 + self.seed;
        self.f970 = 970 + self.seed;
        self.f971 = 971 + self.seed;
        self.f972 = 972 + self.seed;
        self.f973 = 973 + self.seed;
        self.f974 = 974 + self.seed;
        self.f975 = 975 + self.seed;
        self.f976 = 976 + self.seed;
        self.f977 = 977 + self.seed;
        self.f978 = 978 + self.seed;
        self.f979 = 979 + self.seed;
        self.f980 = 980 + self.seed;
        self.f981 = 981 + self.seed;
        self.f982 = 982 + self.seed;
        self.f983 = 983 + self.seed;
        self.f984 = 984 + self.seed;
        self.f985 = 985 + self.seed;
        self.f986 = 986 + self.seed;
        self.f987 = 987 + self.seed;
        self.f988 = 988 + self.seed;
        self.f989 = 989 + self.seed;
        self.f990 = 990 + self.seed;
        self.f991 = 991 + self.seed;
        self.f992 = 992 + self.seed;
        self.f993 = 993 + self.seed;
        self.f994 = 994 + self.seed;
        self.f995 = 995 + self.seed;
        self.f996 = 996 + self.seed;
        self.f997 = 997 + self.seed;
        self.f998 = 998 + self.seed;
        self.f999 = 999 + self.seed;
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let runs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()))
        .expect("temp dir");
    let ds = flowlib::Datastore::open(
        dir.path().join("ds").to_str().unwrap(),
        flowlib::OpenMode::Create,
    )
    .unwrap();
    let one = |seed: u64, label: &str| {
        let opts = flowlib::RunOptions::default()
            .with_param("seed", (seed * 10_000).to_string())
            .with_progress(flowlib::ProgressMode::Quiet);
        let t = Instant::now();
        let s = flowlib::run::<Wide>(&ds, &opts).expect("run");
        let wall = t.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(s.status, flowlib::RunStatus::Succeeded);
        let run = flowlib::Run::<Wide>::open(&ds, &s.run_id).unwrap();
        let m = run.task("start").unwrap().manifest().clone();
        assert_eq!(m.artifacts.len(), 1_001);
        println!(
            "{label}: start's store phase {:.1} ms ({} artifacts), whole run {wall:.1} ms",
            m.timings.store_ms,
            m.artifacts.len()
        );
    };
    for seed in 1..=runs {
        one(seed, &format!("run {seed}, all values new"));
    }
    one(1, "seed 1 again in the same process, nothing new");
}
