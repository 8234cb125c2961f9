"""Demo data: a shop's support desk after a busy month.

One store, six inboxes (email, chat, WhatsApp, Telegram, Amazon messages, API), an admin and
three agents in two teams, about 200 customers and 300 conversations over the last 30 days in
English, Simplified Chinese, Arabic, Spanish and German: new ones, overdue ones, ones waiting on
the agent or on the customer, on hold, solved, reopened, closed, and a few merged across
channels.

Everything goes through the actions (``receive_message`` with ``sent_at`` in the past, ``reply``,
``add_note``, ``assign``, ``set_status``, ``set_priority``, ``tag``, ``merge_conversations``,
``link_identity``), so the demo exercises the same pipeline as live traffic: identity
resolution, threading (email references, chat sessions, the window), reopening, summaries.
Only the store, the inboxes, the teams' inboxes and the admin's superuser flag are written
directly: no action exists for them yet.

Deterministic (a fixed seed) apart from ``now``; about 4 seconds on SQLite.
"""

from __future__ import annotations

import random
import time
import unicodedata
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from kefu.accounts.actions import create_agent, create_team
from kefu.accounts.models import Agent, Role, Team
from kefu.commerce.models import Platform, Store
from kefu.conversations import actions
from kefu.conversations.inbound import InboundMessage
from kefu.conversations.models import Conversation, Inbox, InboxKind, Message, Priority, Status
from kefu.conversations.selectors import agent_can_access_inbox
from kefu.core.errors import Conflict
from kefu.core.events import subscribe, unsubscribe
from kefu.customers.actions import link_identity
from kefu.customers.identities import normalize
from kefu.customers.models import Customer, Identity

SEED = 1042
CUSTOMERS = 200
CONVERSATIONS = 300

DEMO_PASSWORD = "kefu-demo-2026"  # noqa: S105 (demo only; printed by `kefu run --demo`)
# (username, password, role), printed by `kefu run --demo` and `kefu demo`.
DEMO_LOGINS: list[tuple[str, str, str]] = [
    ("admin", DEMO_PASSWORD, Role.ADMIN),
    ("lena", DEMO_PASSWORD, Role.LEAD),
    ("wei", DEMO_PASSWORD, Role.AGENT),
    ("omar", DEMO_PASSWORD, Role.AGENT),
]
# username -> (display name, interface language, languages spoken)
_AGENT_PROFILES = {
    "admin": ("Alex Admin", "en", ["en"]),
    "lena": ("Lena Vogel", "en", ["en", "de", "es"]),
    "wei": ("Wei Zhang", "zh-hans", ["zh", "en"]),
    "omar": ("Omar Haddad", "ar", ["ar", "en"]),
}


class DemoRefused(Exception):
    """The database already has data and the caller did not pass ``force``."""


@dataclass(frozen=True)
class DemoSummary:
    customers: int
    conversations: int
    messages: int
    seconds: float


# --- The texts ---------------------------------------------------------------------------------
#
# Per language and intent: the customer's opening message, the agent's first answer, the
# customer's follow-up and the agent's resolving answer. Placeholders: {order}, {tracking},
# {carrier}, {product}, {rma}; they stay the same through one conversation.

INTENTS = ("wismo", "return", "refund", "damaged", "presale", "complaint", "cancel")
INTENT_TAGS = {
    "wismo": "where-is-my-order",
    "return": "return",
    "refund": "refund",
    "damaged": "damaged",
    "presale": "pre-sale",
    "complaint": "complaint",
    "cancel": "cancellation",
}


def _thread(open: list[str], agent: list[str], follow: list[str], resolve: list[str]) -> dict:
    return {"open": open, "agent": agent, "follow": follow, "resolve": resolve}


THREADS: dict[str, dict[str, dict[str, list[str]]]] = {
    "en": {
        "wismo": _thread(
            [
                "Hi, where is my order {order}? It's been 10 days and the tracking number {tracking} hasn't updated since it left your warehouse.",
                "Hello, my order {order} still shows 'in transit' with {carrier}. I need it before the weekend, can you check please?",
                "I ordered the {product} almost two weeks ago (order {order}) and nothing has arrived yet. Any news?",
            ],
            [
                "I've checked order {order}: the parcel is with {carrier} (tracking {tracking}) and is waiting for customs clearance. It usually moves again within 2-3 days, and I'll keep an eye on it for you.",
                "Thanks for your patience. Your order {order} was handed to {carrier} and the latest scan shows it at your local sorting center. Expected delivery is within 3 business days.",
            ],
            [
                "Thanks, but the tracking now says delivered and there is nothing in my mailbox or with my neighbours.",
                "It's still not here. The tracking {tracking} hasn't changed for four days.",
            ],
            [
                "I'm sorry about this. I've opened a trace with {carrier} and shipped a replacement today at no cost; you'll get the new tracking number by email.",
                "{carrier} confirmed the parcel was held at their depot; it is out for delivery tomorrow. If it doesn't arrive, just reply here and we'll reship right away.",
            ],
        ),
        "return": _thread(
            [
                "I'd like to return the {product} from order {order}, it doesn't fit. How do I start a return?",
                "Can I send back the {product}? Order {order}. It's unopened, I just changed my mind.",
                "The {product} looks quite different from the pictures. I want to return it (order {order}).",
            ],
            [
                "Of course! The {product} is within our 30-day return window. I've emailed you a prepaid return label; please pack it in the original box and drop it off at any {carrier} location.",
                "No problem. I've created return RMA-{rma} for order {order}. Print the label from the email and we'll refund you as soon as the warehouse receives it.",
            ],
            [
                "Done, I dropped the parcel off this morning. When will I see the refund?",
                "The label link says it has expired, can you send a new one?",
            ],
            [
                "Thanks! Refunds go out within 2 business days after the warehouse scans the return, back to your original payment method.",
                "Here is a fresh label for RMA-{rma}, valid for 14 days. Sorry for the hassle!",
            ],
        ),
        "refund": _thread(
            [
                "I returned order {order} two weeks ago and still no refund. When will I get my money back?",
                "My order {order} was cancelled but I was charged anyway. Please refund me.",
            ],
            [
                "I'm sorry for the wait. The warehouse received your return on Monday and I've just issued the refund for order {order}; it takes 5-7 business days to appear on your statement.",
                "You're right, that charge should have been released. I've refunded the full amount for order {order} today.",
            ],
            [
                "My bank says nothing has arrived yet. Can you send me proof of the refund?",
                "Thanks. Will the shipping fee be refunded too?",
            ],
            [
                "Of course: the refund reference is RF-{rma}. Your bank can trace the payment with it.",
                "Yes, the shipping fee is included; you'll see a single refund for the full amount.",
            ],
        ),
        "damaged": _thread(
            [
                "The {product} from order {order} arrived broken, the box was completely crushed. What can you do?",
                "Item damaged on arrival (order {order}). The {product} has a crack across the front. I want a replacement.",
            ],
            [
                "I'm so sorry it arrived like that! Could you send us a photo of the {product} and of the outer box? As soon as we have them we'll ship a replacement.",
                "That should not happen. Please reply with a photo of the damage and we'll send a new {product} right away; no need to return the broken one.",
            ],
            ["Here are the photos of the box and the item.", "Photos attached. The box was wet as well."],
            [
                "Thank you! A replacement is on its way with {carrier}, tracking {tracking}. Please keep or recycle the damaged one.",
            ],
        ),
        "presale": _thread(
            [
                "Does the {product} work with 220 V? I'm thinking of ordering two as gifts.",
                "Is the {product} available in blue? And how long is the warranty?",
                "Do you ship the {product} to Canada, and how long does it take?",
            ],
            [
                "Good question! The {product} works from 100 to 240 V, so it's fine anywhere with a plug adapter, and it comes with a 2-year warranty.",
                "Yes, it comes in blue, black and sand, and every order ships with tracking. Delivery takes 5-8 business days.",
            ],
            ["Great, and if I order today, will it arrive before the 20th?"],
            ["If you order before 2 pm it ships the same day, so it should arrive in time. Enjoy!"],
        ),
        "complaint": _thread(
            [
                "This is the third time I'm writing about order {order}. Nobody answers, terrible service!",
                "Very disappointed. The {product} stopped working after a week and no one replies to my emails.",
            ],
            [
                "I'm really sorry you had to write several times; that's not the service we want to give. I've taken over your case personally and I'm looking into order {order} right now.",
                "I apologise for the silence. I've refunded your shipping costs and added a 15% voucher to your account while we sort out the {product}.",
            ],
            ["OK, but I want this fixed this week, not another promise."],
            [
                "Understood. A replacement went out today by express with {carrier} (tracking {tracking}) and should arrive within 2 days. I'll check on it myself.",
            ],
        ),
        "cancel": _thread(
            [
                "Please cancel order {order}, I ordered the wrong size by mistake.",
                "Can I still cancel my order {order}? I found the {product} in a local shop, sorry.",
            ],
            [
                "Done: order {order} is cancelled and the full amount will be back on your card within 3-5 business days.",
                "Order {order} had already shipped, so I couldn't cancel it, but you can refuse the delivery or return it for free and we'll refund you in full.",
            ],
            ["Thanks! Will I get a confirmation by email?"],
            ["Yes, the confirmation is on its way. Thanks for shopping with us!"],
        ),
    },
    "zh": {
        "wismo": _thread(
            [
                "你好，我的订单 {order} 已经十天了还没到，物流单号 {tracking} 从出库后就一直没有更新。",
                "请问订单 {order} 现在到哪里了？{carrier} 的物流信息一直显示运输中，我周末前需要用。",
                "我两周前买的{product}（订单 {order}）到现在还没收到，能帮我查一下吗？",
            ],
            [
                "已为您查询订单 {order}：包裹在 {carrier}（单号 {tracking}）正在清关，通常两到三天内会恢复运输，我们会持续跟进。",
                "感谢您的耐心等待。订单 {order} 已交给 {carrier}，最新扫描显示已到达当地分拣中心，预计三个工作日内送达。",
            ],
            [
                "谢谢，但是物流显示已签收，我家信箱和邻居那里都没有。",
                "还是没有收到，单号 {tracking} 已经四天没有更新了。",
            ],
            ["非常抱歉。我们已向 {carrier} 发起查件，并免费为您补发了一件，新的物流单号会通过邮件发给您。"],
        ),
        "return": _thread(
            [
                "订单 {order} 里的{product}尺寸不合适，我想退货，请问怎么操作？",
                "{product}和图片上的颜色不一样，我想退货，订单号 {order}。",
            ],
            [
                "没问题，{product}还在30天退货期内。预付费退货面单已发到您的邮箱，请用原包装寄回。",
                "已为订单 {order} 创建退货单 RMA-{rma}，打印面单后寄回即可，仓库收到后马上为您退款。",
            ],
            ["已经寄出了，请问什么时候能收到退款？"],
            ["仓库签收后两个工作日内原路退款，请留意账户变动。"],
        ),
        "refund": _thread(
            [
                "我两周前已经退回了订单 {order}，为什么还没有收到退款？",
                "订单 {order} 已经取消了，但是还是扣款了，请尽快退款。",
            ],
            ["抱歉让您久等了。仓库周一已收到退货，订单 {order} 的退款今天已经处理，5到7个工作日到账。"],
            ["银行说还没有收到，能给我退款凭证吗？"],
            ["退款参考号是 RF-{rma}，您可以凭此向银行查询。"],
        ),
        "damaged": _thread(
            [
                "收到的{product}是坏的，外包装也压扁了，订单号 {order}，请尽快处理。",
                "订单 {order} 的{product}表面有一道裂痕，我要换货。",
            ],
            ["非常抱歉！麻烦您拍一下{product}和外箱的照片发给我们，收到后马上为您补发。"],
            ["照片已经发了，请查收。"],
            ["谢谢，新的{product}已通过 {carrier} 寄出，单号 {tracking}。坏的那件不用寄回。"],
        ),
        "presale": _thread(
            ["请问这款{product}支持220V电压吗？保修多久？", "{product}有蓝色的吗？一般多久能发货？"],
            [
                "您好，{product}支持100-240V电压，保修两年。",
                "有蓝色、黑色和沙色可选，所有订单都有物流追踪，5到8个工作日送达。",
            ],
            ["好的，今天下单的话20号之前能到吗？"],
            ["下午两点前下单当天发货，应该来得及。祝您购物愉快！"],
        ),
        "complaint": _thread(
            [
                "客服一直不回复，订单 {order} 的问题已经拖了很久了，非常失望！",
                "{product}用了一个星期就坏了，发了好几封邮件都没人理。",
            ],
            ["非常抱歉让您多次来信，这不是我们应有的服务。您的问题由我亲自跟进，正在处理订单 {order}。"],
            ["好吧，但这周之内一定要解决。"],
            ["明白。今天已通过 {carrier} 加急为您补发，单号 {tracking}，预计两天送达。"],
        ),
        "cancel": _thread(
            ["请帮我取消订单 {order}，我选错尺码了。", "订单 {order} 还能取消吗？不好意思，我不想要了。"],
            ["订单 {order} 已取消，全额退款将在3到5个工作日内退回您的账户。"],
            ["谢谢！会有确认邮件吗？"],
            ["会的，确认邮件已经发出。感谢您的支持！"],
        ),
    },
    "ar": {
        "wismo": _thread(
            [
                "مرحبًا، أين طلبي رقم {order}؟ مرّت عشرة أيام ورقم التتبع {tracking} لم يتغير منذ خروج الشحنة من المستودع.",
                "متى سيصل طلبي {order}؟ التتبع لدى {carrier} يقول إنه في الطريق، وأحتاجه قبل نهاية الأسبوع.",
                "طلبت {product} قبل أسبوعين تقريبًا (الطلب {order}) ولم يصل شيء حتى الآن. هل من جديد؟",
            ],
            [
                "تحققت من الطلب {order}: الشحنة لدى {carrier} (رقم التتبع {tracking}) بانتظار التخليص الجمركي، وعادةً تتحرك خلال يومين إلى ثلاثة أيام. سأتابعها لك.",
                "شكرًا لصبرك. سُلّم طلبك {order} إلى {carrier} وآخر مسح يظهر وصوله إلى مركز الفرز المحلي، والتسليم المتوقع خلال ثلاثة أيام عمل.",
            ],
            [
                "شكرًا، لكن التتبع يقول إنه تم التسليم ولا يوجد شيء في صندوق البريد.",
                "لم يصل بعد، ورقم التتبع {tracking} لم يتغير منذ أربعة أيام.",
            ],
            [
                "نعتذر عن ذلك. فتحنا طلب تتبع لدى {carrier} وأرسلنا لك بديلًا اليوم دون أي تكلفة، وسيصلك رقم التتبع الجديد بالبريد الإلكتروني.",
            ],
        ),
        "return": _thread(
            [
                "أريد إرجاع {product} من الطلب {order} لأن المقاس غير مناسب. كيف أبدأ الإرجاع؟",
                "هل يمكنني إرجاع {product}؟ الطلب {order}، ولم أفتح العلبة بعد.",
            ],
            [
                "بالتأكيد، ما زلت ضمن مهلة الإرجاع البالغة 30 يومًا. أرسلنا إلى بريدك ملصق إرجاع مدفوعًا مسبقًا، يرجى تغليف المنتج في علبته الأصلية.",
                "أنشأنا طلب الإرجاع RMA-{rma} للطلب {order}. اطبع الملصق من البريد وسنعيد لك المبلغ فور استلام المستودع للشحنة.",
            ],
            ["سلّمت الطرد اليوم. متى سيصلني المبلغ؟"],
            ["يُعاد المبلغ خلال يومي عمل من استلام المستودع للمرتجع، إلى وسيلة الدفع الأصلية."],
        ),
        "refund": _thread(
            [
                "أعدت الطلب {order} منذ أسبوعين ولم أستلم المبلغ حتى الآن. متى سيُعاد لي؟",
                "أُلغي طلبي {order} لكن تم خصم المبلغ من بطاقتي. أرجو استرداده.",
            ],
            [
                "نعتذر عن التأخير. استلم المستودع المرتجع يوم الاثنين، وقد أصدرت اليوم استرداد المبلغ للطلب {order}، ويظهر خلال 5 إلى 7 أيام عمل.",
            ],
            ["يقول البنك إنه لم يصل شيء بعد. هل يمكنكم إرسال ما يثبت الاسترداد؟"],
            ["بالطبع، الرقم المرجعي للاسترداد هو RF-{rma}، ويمكن للبنك تتبع الدفعة به."],
        ),
        "damaged": _thread(
            [
                "وصل {product} مكسورًا والعلبة متضررة تمامًا، الطلب رقم {order}. ماذا يمكنكم أن تفعلوا؟",
                "المنتج تالف عند الاستلام (الطلب {order})، يوجد شق واضح في {product}. أريد بديلًا.",
            ],
            [
                "نأسف جدًا لوصوله بهذه الحالة! هل يمكنك إرسال صورة للمنتج وللعلبة الخارجية؟ سنشحن لك بديلًا فور استلامها.",
            ],
            ["أرسلت الصور الآن، أرجو التحقق منها."],
            ["شكرًا لك، البديل في الطريق مع {carrier} برقم التتبع {tracking}. لا داعي لإعادة المنتج التالف."],
        ),
        "presale": _thread(
            [
                "هل يتوفر {product} باللون الأسود؟ وما هي مدة الضمان؟",
                "هل تشحنون {product} إلى الإمارات؟ وكم يستغرق التوصيل؟",
            ],
            [
                "نعم، متوفر بالأسود والأزرق والرملي، مع ضمان لمدة سنتين.",
                "نعم نشحن إلى الإمارات، ويستغرق التوصيل من 5 إلى 8 أيام عمل مع رقم تتبع.",
            ],
            ["ممتاز، إذا طلبت اليوم هل سيصل قبل يوم 20؟"],
            ["إذا طلبت قبل الساعة الثانية ظهرًا يُشحن في اليوم نفسه، فسيصل في الموعد بإذن الله."],
        ),
        "complaint": _thread(
            [
                "هذه ثالث مرة أكتب بخصوص الطلب {order} ولا أحد يرد. خدمة سيئة جدًا!",
                "أنا مستاء جدًا. توقف {product} عن العمل بعد أسبوع ولا أحد يرد على رسائلي.",
            ],
            [
                "نعتذر بشدة لأنك اضطررت إلى الكتابة عدة مرات، فهذه ليست الخدمة التي نريد تقديمها. سأتابع طلبك {order} بنفسي الآن.",
            ],
            ["حسنًا، لكنني أريد حلًا هذا الأسبوع."],
            ["مفهوم. شحنّا لك بديلًا اليوم بالبريد السريع مع {carrier} (رقم التتبع {tracking}) ويصل خلال يومين."],
        ),
        "cancel": _thread(
            ["أرجو إلغاء الطلب {order}، اخترت المقاس الخطأ.", "هل ما زال بإمكاني إلغاء طلبي {order}؟"],
            ["تم إلغاء الطلب {order}، وسيُعاد المبلغ كاملًا إلى بطاقتك خلال 3 إلى 5 أيام عمل."],
            ["شكرًا! هل سيصلني تأكيد بالبريد الإلكتروني؟"],
            ["نعم، أُرسل التأكيد إلى بريدك. شكرًا لتسوقك معنا!"],
        ),
    },
    "es": {
        "wismo": _thread(
            [
                "Hola, ¿dónde está mi pedido {order}? Han pasado diez días y el seguimiento {tracking} no se actualiza desde que salió del almacén.",
                "Mi pedido {order} sigue 'en tránsito' con {carrier}. Lo necesito antes del fin de semana, ¿pueden revisarlo?",
                "Pedí un artículo ({product}) hace casi dos semanas, pedido {order}, y todavía no ha llegado nada. ¿Alguna novedad?",
            ],
            [
                "He revisado el pedido {order}: el paquete está con {carrier} (seguimiento {tracking}) pendiente del despacho de aduanas. Normalmente avanza en 2-3 días; lo seguiré de cerca.",
                "Gracias por su paciencia. Su pedido {order} ya está en el centro de distribución local de {carrier}; la entrega está prevista en 3 días hábiles.",
            ],
            [
                "Gracias, pero ahora el seguimiento dice entregado y no hay nada en mi buzón.",
                "Sigue sin llegar. El seguimiento {tracking} no cambia desde hace cuatro días.",
            ],
            [
                "Lo siento mucho. He abierto una reclamación con {carrier} y hoy le hemos enviado un reemplazo sin coste; recibirá el nuevo número de seguimiento por correo.",
            ],
        ),
        "return": _thread(
            [
                "Quiero devolver un artículo del pedido {order} ({product}), no me queda bien. ¿Cómo lo hago?",
                "¿Puedo devolver el artículo ({product})? Pedido {order}. Está sin abrir.",
            ],
            [
                "¡Por supuesto! Está dentro del plazo de 30 días. Le hemos enviado por correo una etiqueta de devolución prepagada; empaquételo en la caja original.",
                "He creado la devolución RMA-{rma} para el pedido {order}. Imprima la etiqueta y le reembolsaremos en cuanto llegue al almacén.",
            ],
            ["Ya lo he enviado esta mañana. ¿Cuándo veré el reembolso?"],
            ["El reembolso se emite en 2 días hábiles desde que el almacén recibe la devolución, al mismo método de pago."],
        ),
        "refund": _thread(
            [
                "Devolví el pedido {order} hace dos semanas y todavía no he recibido el reembolso.",
                "Mi pedido {order} fue cancelado pero me lo cobraron igualmente. Por favor, devuélvanme el dinero.",
            ],
            [
                "Disculpe la espera. El almacén recibió su devolución el lunes y hoy he emitido el reembolso del pedido {order}; tarda de 5 a 7 días hábiles en aparecer.",
            ],
            ["Mi banco dice que no ha llegado nada. ¿Me pueden enviar un justificante?"],
            ["Claro: la referencia del reembolso es RF-{rma}. Su banco puede rastrear el pago con ella."],
        ),
        "damaged": _thread(
            [
                "El artículo ({product}) llegó roto y la caja estaba aplastada. Pedido {order}.",
                "Producto dañado al recibirlo (pedido {order}): tiene una grieta en la parte delantera. Quiero un reemplazo.",
            ],
            [
                "¡Lamentamos mucho que haya llegado así! ¿Podría enviarnos una foto del producto y de la caja? En cuanto la tengamos, le enviamos uno nuevo.",
            ],
            ["Aquí tienen las fotos de la caja y del producto."],
            ["Gracias, el reemplazo ya va en camino con {carrier}, seguimiento {tracking}. No hace falta devolver el dañado."],
        ),
        "presale": _thread(
            [
                "¿El artículo ({product}) tiene garantía en España? ¿Cuánto tarda el envío?",
                "¿Tienen este modelo ({product}) en azul?",
            ],
            [
                "Sí, tiene dos años de garantía en toda la UE y el envío tarda de 5 a 8 días hábiles con seguimiento.",
                "Sí, está disponible en azul, negro y arena.",
            ],
            ["Perfecto. Si lo pido hoy, ¿llegará antes del día 20?"],
            ["Si lo pide antes de las 14:00 sale hoy mismo, así que debería llegar a tiempo."],
        ),
        "complaint": _thread(
            [
                "Es la tercera vez que escribo por el pedido {order}. ¡Nadie responde, pésimo servicio!",
                "Muy decepcionado. El artículo ({product}) dejó de funcionar a la semana y nadie contesta mis correos.",
            ],
            [
                "Siento mucho que haya tenido que escribirnos varias veces; no es el servicio que queremos dar. Me encargo personalmente de su caso y ya estoy revisando el pedido {order}.",
            ],
            ["Vale, pero quiero que se solucione esta semana."],
            ["Entendido. Hoy sale un reemplazo urgente con {carrier} (seguimiento {tracking}) y llegará en 2 días."],
        ),
        "cancel": _thread(
            ["Por favor, cancelen el pedido {order}, me equivoqué de talla.", "¿Todavía puedo cancelar mi pedido {order}?"],
            ["Hecho: el pedido {order} está cancelado y el importe total se le devolverá en 3-5 días hábiles."],
            ["¡Gracias! ¿Recibiré una confirmación por correo?"],
            ["Sí, la confirmación ya está en camino. ¡Gracias por su compra!"],
        ),
    },
    "de": {
        "wismo": _thread(
            [
                "Hallo, wo ist meine Bestellung {order}? Seit zehn Tagen zeigt die Sendungsverfolgung {tracking} nichts Neues.",
                "Meine Bestellung {order} steht bei {carrier} immer noch auf 'unterwegs'. Ich brauche sie vor dem Wochenende, können Sie bitte nachsehen?",
                "Ich habe vor fast zwei Wochen bestellt (Artikel: {product}, Bestellung {order}) und noch nichts erhalten. Gibt es Neuigkeiten?",
            ],
            [
                "Ich habe Bestellung {order} geprüft: Das Paket liegt bei {carrier} (Sendungsnummer {tracking}) in der Zollabfertigung. Meist geht es in 2-3 Tagen weiter; ich behalte es für Sie im Blick.",
                "Danke für Ihre Geduld. Ihre Bestellung {order} ist im regionalen Verteilzentrum von {carrier} angekommen; die Zustellung ist in 3 Werktagen geplant.",
            ],
            [
                "Danke, aber jetzt steht da 'zugestellt' und im Briefkasten ist nichts, bei den Nachbarn auch nicht.",
                "Es ist immer noch nicht da. Die Sendungsnummer {tracking} hat sich seit vier Tagen nicht geändert.",
            ],
            [
                "Das tut mir leid. Ich habe einen Nachforschungsauftrag bei {carrier} gestellt und Ihnen heute kostenlos Ersatz geschickt; die neue Sendungsnummer kommt per E-Mail.",
            ],
        ),
        "return": _thread(
            [
                "Ich möchte einen Artikel aus Bestellung {order} zurückschicken ({product}), er passt leider nicht. Wie geht das?",
                "Kann ich den Artikel ({product}) zurückgeben? Bestellung {order}, noch originalverpackt.",
            ],
            [
                "Natürlich! Sie sind innerhalb der 30-tägigen Rückgabefrist. Wir haben Ihnen ein vorfrankiertes Rücksendeetikett per E-Mail geschickt; bitte verpacken Sie den Artikel im Originalkarton.",
                "Ich habe die Retoure RMA-{rma} für Bestellung {order} angelegt. Drucken Sie das Etikett aus; sobald das Lager die Sendung erhält, erstatten wir den Betrag.",
            ],
            ["Ich habe das Paket heute abgegeben. Wann kommt die Erstattung?"],
            ["Die Erstattung erfolgt innerhalb von 2 Werktagen nach Eingang im Lager, auf Ihr ursprüngliches Zahlungsmittel."],
        ),
        "refund": _thread(
            [
                "Ich habe die Bestellung {order} vor zwei Wochen zurückgeschickt und noch keine Erstattung erhalten.",
                "Meine Bestellung {order} wurde storniert, aber trotzdem abgebucht. Bitte erstatten Sie den Betrag.",
            ],
            [
                "Entschuldigen Sie die Wartezeit. Das Lager hat Ihre Rücksendung am Montag erhalten, und ich habe die Erstattung für Bestellung {order} heute veranlasst; sie erscheint in 5-7 Werktagen.",
            ],
            ["Meine Bank sagt, es ist noch nichts eingegangen. Können Sie mir einen Nachweis schicken?"],
            ["Gern: Die Referenz der Erstattung lautet RF-{rma}. Damit kann Ihre Bank die Zahlung nachverfolgen."],
        ),
        "damaged": _thread(
            [
                "Der Artikel ({product}) ist beschädigt angekommen, der Karton war eingedrückt. Bestellung {order}.",
                "Ware beschädigt geliefert (Bestellung {order}), vorne ist ein Riss. Ich möchte Ersatz.",
            ],
            [
                "Das tut uns sehr leid! Könnten Sie uns ein Foto des Artikels und des Kartons schicken? Sobald wir es haben, schicken wir Ersatz.",
            ],
            ["Hier sind die Fotos vom Karton und vom Artikel."],
            ["Danke, der Ersatz ist mit {carrier} unterwegs, Sendungsnummer {tracking}. Den beschädigten Artikel müssen Sie nicht zurückschicken."],
        ),
        "presale": _thread(
            [
                "Gibt es den Artikel ({product}) auch in Schwarz? Wie lange ist die Garantie?",
                "Liefern Sie nach Österreich, und wie lange dauert der Versand?",
            ],
            [
                "Ja, es gibt ihn in Schwarz, Blau und Sand, mit zwei Jahren Garantie.",
                "Ja, wir liefern nach Österreich; der Versand dauert 5-8 Werktage mit Sendungsverfolgung.",
            ],
            ["Super. Wenn ich heute bestelle, ist es vor dem 20. da?"],
            ["Bei Bestellung vor 14 Uhr verschicken wir noch am selben Tag, das sollte also klappen."],
        ),
        "complaint": _thread(
            [
                "Das ist schon meine dritte Nachricht zu Bestellung {order}. Keiner antwortet, sehr ärgerlich!",
                "Sehr enttäuscht: Der Artikel ({product}) funktioniert nach einer Woche nicht mehr, und niemand beantwortet meine E-Mails.",
            ],
            [
                "Es tut mir sehr leid, dass Sie mehrmals schreiben mussten; das ist nicht der Service, den wir bieten wollen. Ich kümmere mich persönlich um Bestellung {order}.",
            ],
            ["Gut, aber ich erwarte eine Lösung noch diese Woche."],
            ["Verstanden. Heute geht per Express Ersatz mit {carrier} raus (Sendungsnummer {tracking}), er ist in 2 Tagen bei Ihnen."],
        ),
        "cancel": _thread(
            [
                "Bitte stornieren Sie die Bestellung {order}, ich habe die falsche Größe gewählt.",
                "Kann ich meine Bestellung {order} noch stornieren?",
            ],
            ["Erledigt: Bestellung {order} ist storniert, der volle Betrag wird in 3-5 Werktagen erstattet."],
            ["Danke! Bekomme ich eine Bestätigung per E-Mail?"],
            ["Ja, die Bestätigung ist unterwegs. Danke für Ihren Einkauf!"],
        ),
    },
}  # fmt: skip

SUBJECTS: dict[str, dict[str, str]] = {
    "en": {
        "wismo": "Where is my order {order}?",
        "return": "Return for order {order}",
        "refund": "Refund for order {order} still missing",
        "damaged": "Damaged item, order {order}",
        "presale": "Question about the {product}",
        "complaint": "Still no answer about order {order}",
        "cancel": "Cancel order {order}",
    },
    "zh": {
        "wismo": "订单 {order} 到哪里了？",
        "return": "订单 {order} 退货",
        "refund": "订单 {order} 退款还没到账",
        "damaged": "商品损坏，订单 {order}",
        "presale": "关于{product}的问题",
        "complaint": "订单 {order} 一直没人回复",
        "cancel": "取消订单 {order}",
    },
    "ar": {
        "wismo": "أين طلبي {order}؟",
        "return": "إرجاع الطلب {order}",
        "refund": "لم يصل استرداد الطلب {order}",
        "damaged": "منتج تالف، الطلب {order}",
        "presale": "سؤال عن {product}",
        "complaint": "لا رد بخصوص الطلب {order}",
        "cancel": "إلغاء الطلب {order}",
    },
    "es": {
        "wismo": "¿Dónde está mi pedido {order}?",
        "return": "Devolución del pedido {order}",
        "refund": "Reembolso pendiente del pedido {order}",
        "damaged": "Producto dañado, pedido {order}",
        "presale": "Pregunta sobre: {product}",
        "complaint": "Sin respuesta sobre el pedido {order}",
        "cancel": "Cancelar pedido {order}",
    },
    "de": {
        "wismo": "Wo ist meine Bestellung {order}?",
        "return": "Rücksendung Bestellung {order}",
        "refund": "Erstattung für Bestellung {order} fehlt",
        "damaged": "Beschädigte Ware, Bestellung {order}",
        "presale": "Frage zu: {product}",
        "complaint": "Keine Antwort zu Bestellung {order}",
        "cancel": "Stornierung Bestellung {order}",
    },
}
THANKS = {
    "en": ["Thank you, that's perfect!", "Great, thanks for the quick help.", "Got it, thanks a lot."],
    "zh": ["谢谢，太好了！", "好的，谢谢你们的帮助。", "收到，非常感谢！"],
    "ar": ["شكرًا جزيلًا، ممتاز!", "تمام، شكرًا على المساعدة السريعة.", "وصلت رسالتك، شكرًا لكم."],
    "es": ["¡Muchas gracias, perfecto!", "Genial, gracias por la ayuda tan rápida.", "Recibido, muchas gracias."],
    "de": ["Vielen Dank, perfekt!", "Super, danke für die schnelle Hilfe.", "Alles klar, vielen Dank."],
}  # fmt: skip
NUDGES = {
    "en": ["Hello? Is anyone there?", "Any update on this, please?"],
    "zh": ["你好？有人在吗？", "请问有进展了吗？"],
    "ar": ["مرحبًا؟ هل يوجد أحد؟", "هل من جديد بخصوص طلبي؟"],
    "es": ["¿Hola? ¿Hay alguien?", "¿Alguna novedad, por favor?"],
    "de": ["Hallo? Ist da jemand?", "Gibt es schon Neuigkeiten?"],
}
REOPENS = {
    "en": [
        "Sorry, one more thing about order {order}: the invoice wasn't in the parcel. Could you email it to me?",
        "Hi again, the problem is back. Can you help?",
    ],
    "zh": ["不好意思又来打扰，包裹里没有发票，能发一份到我邮箱吗？", "你好，问题又出现了，能帮忙看一下吗？"],
    "ar": [
        "آسف على الإزعاج مرة أخرى، الفاتورة غير موجودة في الطرد. هل يمكن إرسالها إلى بريدي؟",
        "مرحبًا مجددًا، عادت المشكلة. هل يمكنكم المساعدة؟",
    ],
    "es": [
        "Perdonen que vuelva a escribir: en el paquete no venía la factura. ¿Me la pueden enviar por correo?",
        "Hola de nuevo, el problema ha vuelto. ¿Me pueden ayudar?",
    ],
    "de": [
        "Entschuldigung, noch eine Sache: Im Paket lag keine Rechnung. Können Sie sie mir per E-Mail schicken?",
        "Hallo nochmal, das Problem ist wieder da. Können Sie helfen?",
    ],
}  # fmt: skip
DUPLICATES = {
    "en": "I also sent you an email about order {order}. Please answer quickly!",
    "zh": "我也发了邮件说订单 {order} 的事，请尽快回复！",
    "ar": "أرسلت لكم أيضًا بريدًا إلكترونيًا بخصوص الطلب {order}، أرجو الرد بسرعة!",
    "es": "También les escribí por correo sobre el pedido {order}. ¡Respondan pronto, por favor!",
    "de": "Ich habe Ihnen auch eine E-Mail zu Bestellung {order} geschickt. Bitte antworten Sie schnell!",
}
GREETINGS = {
    "en": "Hi {name},",
    "zh": "{name}，您好！",
    "ar": "مرحبًا {name}،",
    "es": "Hola, {name}:",
    "de": "Hallo {name},",
}
SIGNATURES = {
    "en": "Best regards,\n{agent} · Lumen Goods support",
    "zh": "祝好！\nLumen Goods 客服 {agent}",
    "ar": "مع أطيب التحيات،\n{agent}، فريق دعم Lumen Goods",
    "es": "Un saludo,\n{agent} · Atención al cliente de Lumen Goods",
    "de": "Viele Grüße\n{agent} · Lumen Goods Kundenservice",
}
# Internal notes are written in the team's working language.
NOTES = {
    "wismo": [
        "Warehouse confirms {order} left Shenzhen on time; the delay is at customs.",
        "Trace opened with {carrier}, reference TR-{rma}.",
    ],
    "return": [
        "Within 30 days, no restocking fee.",
        "Repeat buyer (6 orders): waive the return shipping.",
    ],
    "refund": [
        "@lena this refund is above my $150 limit, can you approve?",
        "Checked Shopify Payments: the refund for {order} was never triggered. Done now.",
    ],
    "damaged": [
        "Photos show transport damage; filing a claim with {carrier}.",
        "Second damaged {product_en} this week from the same batch, flagged to the warehouse.",
    ],
    "presale": ["Asked the product team about an EU-plug version; expected next month."],
    "complaint": [
        "@lena third message from this customer; offering 15% off as goodwill.",
        "Their earlier emails landed in spam (typo in our SPF record, fixed).",
    ],
    "cancel": ["Not picked yet; cancelled in Shopify before fulfilment."],
}
HOLD_NOTES = [
    "Waiting for {carrier}'s investigation (TR-{rma}); they answer within 5 business days.",
    "On hold until the warehouse inspects the returned {product_en}.",
]

PRODUCTS: list[dict[str, str]] = [
    {"en": "wireless earbuds", "zh": "无线耳机", "ar": "السماعات اللاسلكية", "es": "auriculares inalámbricos", "de": "kabellose Kopfhörer"},
    {"en": "phone case", "zh": "手机壳", "ar": "غطاء الهاتف", "es": "funda para móvil", "de": "Handyhülle"},
    {"en": "LED desk lamp", "zh": "LED台灯", "ar": "مصباح المكتب", "es": "lámpara de escritorio LED", "de": "LED-Schreibtischlampe"},
    {"en": "yoga mat", "zh": "瑜伽垫", "ar": "سجادة اليوغا", "es": "esterilla de yoga", "de": "Yogamatte"},
    {"en": "smart watch", "zh": "智能手表", "ar": "الساعة الذكية", "es": "reloj inteligente", "de": "Smartwatch"},
    {"en": "travel backpack", "zh": "旅行双肩包", "ar": "حقيبة الظهر", "es": "mochila de viaje", "de": "Reiserucksack"},
    {"en": "pour-over coffee set", "zh": "手冲咖啡套装", "ar": "طقم القهوة", "es": "set de café de goteo", "de": "Kaffeefilter-Set"},
    {"en": "wool throw blanket", "zh": "羊毛毯", "ar": "البطانية الصوفية", "es": "manta de lana", "de": "Wolldecke"},
]  # fmt: skip

# Per language: (written name, latin spelling for the email address).
FIRST_NAMES: dict[str, list[tuple[str, str]]] = {
    "en": [(n, n.lower()) for n in ["Emma", "Liam", "Olivia", "Noah", "Ava", "Mason", "Sophia", "James", "Isabella", "Lucas", "Mia", "Ethan", "Charlotte", "Jack", "Amelia", "Henry"]],
    "zh": [("芳", "fang"), ("伟", "wei"), ("敏", "min"), ("洋", "yang"), ("静", "jing"), ("磊", "lei"), ("婷", "ting"), ("浩", "hao"), ("雪", "xue"), ("杰", "jie"), ("丽", "li"), ("强", "qiang")],
    "ar": [("محمد", "mohammed"), ("فاطمة", "fatima"), ("أحمد", "ahmed"), ("نور", "noor"), ("خالد", "khalid"), ("ليلى", "layla"), ("يوسف", "youssef"), ("مريم", "maryam"), ("سارة", "sara"), ("علي", "ali"), ("هدى", "huda"), ("طارق", "tariq")],
    "es": [(n, n) for n in ["Lucía", "Mateo", "Sofía", "Hugo", "Valeria", "Pablo", "Martina", "Diego", "Carmen", "Javier", "Elena", "Álvaro"]],
    "de": [(n, n) for n in ["Lukas", "Anna", "Jonas", "Mia", "Felix", "Leonie", "Paul", "Hannah", "Maximilian", "Sophie", "Jan", "Laura"]],
}  # fmt: skip
LAST_NAMES: dict[str, list[tuple[str, str]]] = {
    "en": [(n, n.lower()) for n in ["Johnson", "Smith", "Brown", "Davis", "Wilson", "Clark", "Taylor", "Walker", "Harris", "Lewis", "Young", "King"]],
    "zh": [("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"), ("黄", "huang"), ("赵", "zhao"), ("周", "zhou"), ("吴", "wu")],
    "ar": [("العلي", "alali"), ("حسن", "hassan"), ("سالم", "salem"), ("الحربي", "alharbi"), ("يوسف", "yousef"), ("كريم", "karim"), ("المنصوري", "almansoori"), ("الشمري", "alshammari")],
    "es": [(n, n) for n in ["García", "López", "Martínez", "Sánchez", "Ruiz", "Fernández", "Gómez", "Díaz"]],
    "de": [(n, n) for n in ["Müller", "Schmidt", "Weber", "Fischer", "Wagner", "Becker", "Hoffmann", "Schulz", "Koch", "Richter"]],
}  # fmt: skip
LANGUAGE_WEIGHTS = {"en": 35, "zh": 20, "ar": 15, "es": 15, "de": 15}
# Mobile number shapes (E.164) per language's typical customer: "#" is a random digit. US
# numbers use the 555-01xx range reserved for fiction.
PHONE_SHAPES = {
    "en": ["+1212555" + "01##", "+1415555" + "01##", "+1646555" + "01##", "+1718555" + "01##"],
    "zh": ["+86138########", "+86139########", "+86186########"],
    "ar": ["+97150#######", "+97155#######", "+9665########"],
    "es": ["+346########"],
    "de": ["+49151########", "+49160########", "+49176########"],
}
CARRIERS = {
    "en": ["UPS", "USPS"],
    "zh": ["China Post", "YunExpress"],
    "ar": ["Aramex", "DHL Express"],
    "es": ["Correos", "YunExpress"],
    "de": ["DHL", "Hermes"],
}

# --- Inboxes, channels and timing ----------------------------------------------------------------

# (name, kind): the API inbox stays last, so it is inbox 6 on a fresh database (README example).
INBOXES = [
    ("Support email", InboxKind.EMAIL),
    ("Website chat", InboxKind.CHAT),
    ("WhatsApp", InboxKind.WHATSAPP),
    ("Telegram", InboxKind.TELEGRAM),
    ("Amazon US messages", InboxKind.MARKETPLACE),
    ("Order system (API)", InboxKind.API),
]
TEAMS = {
    "Email & marketplaces": (["lena", "wei"], [InboxKind.EMAIL, InboxKind.MARKETPLACE, InboxKind.API]),
    "Chat & messaging": (["lena", "omar"], [InboxKind.CHAT, InboxKind.WHATSAPP, InboxKind.TELEGRAM]),
}  # fmt: skip
# Direct memberships on top of the teams: the Chinese and Arabic speakers help on more channels.
DIRECT_MEMBERS = {"wei": [InboxKind.CHAT, InboxKind.WHATSAPP], "omar": [InboxKind.EMAIL]}
# Messaging channels are answered within minutes; mail-like ones within hours.
FAST_KINDS = {InboxKind.CHAT, InboxKind.WHATSAPP, InboxKind.TELEGRAM}
SIGNED_KINDS = {InboxKind.EMAIL, InboxKind.MARKETPLACE, InboxKind.API}
WEB_KIND_WEIGHTS = {InboxKind.EMAIL: 4, InboxKind.CHAT: 3, InboxKind.WHATSAPP: 3, InboxKind.API: 2}

# fate -> (weight, how long ago the customer first wrote, in hours: low, high)
FATES = {
    "unanswered": (13, 0.1, 16),
    "overdue": (5, 26, 140),
    "waiting": (12, 2, 48),
    "pending": (11, 8, 400),
    "on_hold": (4, 30, 400),
    "solved": (40, 60, 700),
    "reopened": (5, 50, 150),
    "merged": (3, 5, 500),
    "closed": (7, 400, 710),
}
# Two conversations of one customer in one inbox start this far apart at least, so that a
# new one never falls inside the threading window of the previous one (a play lasts < 6 days).
SPACING = timedelta(days=10)


@dataclass
class _Person:
    index: int
    language: str
    name: str
    salutation: str
    email: str
    phone: str  # E.164, or "" when the demo customer gave none
    kinds: dict[str, int]  # inbox kind -> weight of writing there
    vip: bool
    telegram: str = ""
    buyer_id: str = ""
    crm_id: str = ""
    linked: bool = False


@dataclass
class _Plan:
    index: int
    person: _Person
    kind: str
    intent: str
    fate: str
    start: datetime
    second_kind: str = ""


@dataclass
class _World:
    store: Store
    inboxes: dict[str, Inbox]
    agents: dict[str, Agent]
    team_of: dict[str, Team]


# --- Entry points ----------------------------------------------------------------------------


def database_has_data() -> bool:
    """True when any agent, store, inbox, customer or conversation exists."""
    return any(model.objects.exists() for model in (Agent, Store, Inbox, Customer, Conversation))


def seed_demo_if_empty(*, stdout: Any = None) -> bool:
    """Seed the demo when the database is empty (``kefu run --demo``); True when it seeded."""
    if database_has_data():
        return False
    seed_demo(stdout=stdout)
    return True


def seed_demo(*, stdout: Any = None, force: bool = False) -> DemoSummary:
    """Create the demo in one transaction.

    Raises DemoRefused when the database already has data, unless ``force`` (the demo is then
    added beside it: a second store and its inboxes, existing demo agents reused).
    """
    if not force and database_has_data():
        raise DemoRefused("the database already has data; use --force to add the demo data anyway")
    started = time.monotonic()
    before = (Customer.objects.count(), Conversation.objects.count(), Message.objects.count())
    with _replies_are_history(), transaction.atomic():
        _Seeder(random.Random(SEED), timezone.now()).run()
    summary = DemoSummary(
        customers=Customer.objects.count() - before[0],
        conversations=Conversation.objects.count() - before[1],
        messages=Message.objects.count() - before[2],
        seconds=time.monotonic() - started,
    )
    if stdout is not None:
        stdout.write(
            f"Demo data: 1 store, {len(INBOXES)} inboxes, {len(DEMO_LOGINS)} logins, "
            f"{summary.customers} customers, {summary.conversations} conversations, "
            f"{summary.messages} messages ({summary.seconds:.1f} s)\n"
        )
    return summary


@contextmanager
def _replies_are_history() -> Iterator[None]:
    """The demo's replies were delivered long ago: enqueue no delivery task for them.

    ``reply()`` emits ``message.queued``, whose subscriber enqueues a delivery task after
    commit. The demo marks each reply sent at once (through the delivery actions), so those
    tasks would only find nothing to do; unsubscribing for the seeding transaction keeps
    hundreds of no-op tasks out of the queue. Seeding runs before the server starts.
    """
    from kefu.conversations.tasks import enqueue_delivery

    unsubscribe("message.queued", enqueue_delivery)
    try:
        yield
    finally:
        subscribe("message.queued")(enqueue_delivery)


# --- The world: store, inboxes, agents, teams -----------------------------------------------------


def _world() -> _World:
    store = Store.objects.create(
        name="Lumen Goods",
        platform=Platform.SHOPIFY,
        currency="USD",
        locale="en",
        country="US",
        timezone="America/Los_Angeles",
    )
    inboxes: dict[str, Inbox] = {
        str(kind): Inbox.objects.create(name=name, kind=kind, store=store) for name, kind in INBOXES
    }
    agents = {username: _demo_agent(username, role) for username, _, role in DEMO_LOGINS}
    team_of: dict[str, Team] = {}
    for team_name, (members, kinds) in TEAMS.items():
        team = create_team(name=team_name, members=[agents[m] for m in members])
        for kind in kinds:
            inboxes[kind].teams.add(team)  # no action for team inboxes yet
            team_of[kind] = team
    for username, kinds in DIRECT_MEMBERS.items():
        for kind in kinds:
            actions.add_inbox_member(inbox=inboxes[kind], agent=agents[username], actor=None)
    # Fresh objects: access checks cache the inbox ids per agent object.
    agents = {a.username: a for a in Agent.objects.filter(username__in=agents)}
    return _World(store=store, inboxes=inboxes, agents=agents, team_of=team_of)


def _demo_agent(username: str, role: str) -> Agent:
    existing = Agent.objects.filter(username=username).first()
    if existing is not None:  # --force on a database that has the demo already
        return existing
    display_name, language, spoken = _AGENT_PROFILES[username]
    agent = create_agent(
        username=username,
        password=DEMO_PASSWORD,
        role=role,
        display_name=display_name,
        language=language,
        email=f"{username}@lumen-goods.example",
    )
    # No action sets these yet: routing skills (automation) and the back office's superuser.
    agent.skills = {"languages": spoken}
    agent.is_superuser = role == Role.ADMIN
    agent.save(update_fields=["skills", "is_superuser"])
    return agent


# --- Customers ----------------------------------------------------------------------------------


def _latin(text: str) -> str:
    """ASCII for an email address: "Müller" -> "muller", "Álvaro" -> "alvaro"."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())


def _people(rng: random.Random) -> list[_Person]:
    # Exact shares (35% English, 20% Chinese, 15% each Arabic, Spanish, German), shuffled.
    total = sum(LANGUAGE_WEIGHTS.values())
    languages = [
        language
        for language, weight in LANGUAGE_WEIGHTS.items()
        for _ in range(round(CUSTOMERS * weight / total))
    ]
    rng.shuffle(languages)
    people: list[_Person] = []
    phones: set[str] = set()
    for index, language in enumerate(languages):
        first, first_latin = rng.choice(FIRST_NAMES[language])
        last, last_latin = rng.choice(LAST_NAMES[language])
        # Chinese names are written surname first, and customers are addressed by full name.
        name = f"{last}{first}" if language == "zh" else f"{first} {last}"
        salutation = name if language == "zh" else first
        domain = rng.choice(["example.com", "example.net", "example.org"])
        email = f"{_latin(first_latin)}.{_latin(last_latin)}{index}@{domain}"
        people.append(_person(rng, index, language, name, salutation, email, phones))
    return people


def _phone(rng: random.Random, language: str, taken: set[str]) -> str:
    """A phone number no other demo customer has (a shared one would join them into one)."""
    while True:
        shape = rng.choice(PHONE_SHAPES[language])
        number = "".join(rng.choice("0123456789") if c == "#" else c for c in shape)
        if number not in taken:
            taken.add(number)
            return number


def _person(
    rng: random.Random,
    index: int,
    language: str,
    name: str,
    salutation: str,
    email: str,
    phones: set[str],
) -> _Person:
    person = _Person(index, language, name, salutation, email, "", {}, vip=rng.random() < 0.08)
    channel = rng.random()
    if channel < 0.18:  # Amazon buyers write through Amazon's relay only
        person.buyer_id = f"A{rng.randrange(16**12):012X}"
        person.kinds = {InboxKind.MARKETPLACE: 1}
    elif channel < 0.30:  # Telegram users give no email or phone
        person.telegram = str(rng.randint(10**8, 10**10))
        person.kinds = {InboxKind.TELEGRAM: 1}
    else:
        if rng.random() < 0.6:
            person.phone = _phone(rng, language, phones)
        if rng.random() < 0.3:
            person.crm_id = f"crm-{40000 + index}"
        person.kinds = {
            kind: weight
            for kind, weight in WEB_KIND_WEIGHTS.items()
            if (kind != InboxKind.WHATSAPP or person.phone)
            and (kind != InboxKind.API or person.crm_id)
        }
    return person


def _spaced_phone(e164: str) -> str:
    """How people type a number into a form ("+49 151 0000 0123"): the pipeline normalizes it."""
    digits = e164[1:]
    return "+" + " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))


def _identities(person: _Person, kind: str, index: int) -> list[tuple[str, str]]:
    if kind == InboxKind.WHATSAPP:
        return [("phone", person.phone)]
    if kind == InboxKind.TELEGRAM:
        return [("telegram", person.telegram)]
    if kind == InboxKind.MARKETPLACE:
        return [("marketplace", person.buyer_id)]
    if kind == InboxKind.API:
        return [("external", person.crm_id), ("email", person.email)]
    if kind == InboxKind.CHAT:
        # The pre-chat form asks for an email and, optionally, a phone number.
        found = [("chat_visitor", f"v-{person.index}-{index}"), ("email", person.email)]
        return found + ([("phone", _spaced_phone(person.phone))] if person.phone else [])
    return [("email", person.email)]


# --- One conversation, played out -------------------------------------------------------------


@dataclass
class _Thread:
    """One conversation as it is being written: who, where, and the facts it talks about."""

    plan: _Plan
    inbox: Inbox
    facts: dict[str, str]
    at: datetime  # when the latest message was written
    conversation: Conversation | None = None
    last_inbound_id: str = ""
    last_outbound_id: str = ""
    sequence: int = 0
    agent: Agent | None = None

    @property
    def language(self) -> str:
        return self.plan.person.language

    def text(self, template: str) -> str:
        return template.format(**self.facts)


class _Seeder:
    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        self.world = _world()
        self.people = _people(rng)

    def run(self) -> None:
        for plan in sorted(self._plans(), key=lambda p: (p.start, p.index)):
            self._play(plan)

    # Planning ------------------------------------------------------------------------------

    def _plans(self) -> list[_Plan]:
        """CONVERSATIONS plans; every customer gets one first, then random customers more."""
        order = list(self.people)
        self.rng.shuffle(order)
        fates, weights = list(FATES), [f[0] for f in FATES.values()]
        taken: dict[tuple[int, str], list[datetime]] = defaultdict(list)
        plans = []
        for index in range(CONVERSATIONS):
            fate = self.rng.choices(fates, weights)[0]
            low, high = FATES[fate][1:]
            start = self.now - timedelta(hours=self.rng.uniform(low, high))
            first = order[index] if index < len(order) else self.rng.choice(self.people)
            plan = self._place(index, first, fate, start, taken)
            if plan is not None:
                plans.append(plan)
        return plans

    def _place(
        self, index: int, first: _Person, fate: str, start: datetime, taken: dict
    ) -> _Plan | None:
        """A plan for ``first`` (or another customer) whose inboxes are free around ``start``."""
        candidates = [first] + [self.rng.choice(self.people) for _ in range(30)]
        for person in candidates:
            kinds = list(person.kinds)
            kind = self.rng.choices(kinds, [person.kinds[k] for k in kinds])[0]
            second = ""
            if fate == "merged":
                # An email first, then the same request on chat or WhatsApp.
                others = [k for k in kinds if k in (InboxKind.CHAT, InboxKind.WHATSAPP)]
                if InboxKind.EMAIL not in kinds or not others:
                    continue
                kind, second = InboxKind.EMAIL, self.rng.choice(others)
            used = [(person.index, k) for k in (kind, second) if k]
            if any(abs(start - other) < SPACING for key in used for other in taken[key]):
                continue
            for key in used:
                taken[key].append(start)
            intent = self.rng.choice(INTENTS)
            return _Plan(index, person, kind, intent, fate, start, second)
        return None

    def _facts(self, plan: _Plan) -> dict[str, str]:
        rng, language = self.rng, plan.person.language
        if plan.kind == InboxKind.MARKETPLACE:
            order = f"11{rng.randint(1, 4)}-{rng.randint(10**6, 10**7 - 1)}-{rng.randint(10**6, 10**7 - 1)}"  # fmt: skip
        else:
            order = f"#{rng.randint(1001, 4999)}"
        carrier = rng.choice(CARRIERS[language])
        product = rng.choice(PRODUCTS)
        return {
            "order": order,
            "carrier": carrier,
            "tracking": _tracking_number(rng, carrier),
            "product": product[language],
            "product_en": product["en"],
            "rma": str(rng.randint(10000, 99999)),
        }

    # Playing ---------------------------------------------------------------------------------

    def _play(self, plan: _Plan) -> None:
        thread = _Thread(plan, self.world.inboxes[plan.kind], self._facts(plan), plan.start)
        opening = self.rng.choice(THREADS[thread.language][plan.intent]["open"])
        subject = thread.text(SUBJECTS[thread.language][plan.intent])
        if not self._customer_writes(thread, opening, plan.start, subject=subject):
            return
        self._link_contact_details(plan.person, thread)
        self._triage(thread)
        getattr(self, f"_fate_{plan.fate}")(thread)

    def _fate_unanswered(self, thread: _Thread) -> None:
        if thread.inbox.kind in FAST_KINDS and self.rng.random() < 0.35:
            self._customer_writes(thread, self.rng.choice(NUDGES[thread.language]))
        if self.rng.random() < 0.3:
            self._assign(thread)

    def _fate_overdue(self, thread: _Thread) -> None:
        if self.rng.random() < 0.5:
            self._customer_writes(thread, self.rng.choice(NUDGES[thread.language]))
        if self.rng.random() < 0.5:
            self._assign(thread, by_lead=True)
        if thread.plan.intent == "complaint":
            self._set_priority(thread, Priority.URGENT)

    def _fate_waiting(self, thread: _Thread) -> None:
        if self._agent_answers(thread, "agent"):
            self._customer_writes(thread, self._pick(thread, "follow"))

    def _fate_pending(self, thread: _Thread) -> None:
        self._agent_answers(thread, "agent", status=Status.PENDING)

    def _fate_on_hold(self, thread: _Thread) -> None:
        if not self._agent_answers(thread, "agent"):
            return
        self._note(thread, self.rng.choice(HOLD_NOTES))
        self._tag(thread, ["carrier-claim"])
        self._set_status(thread, Status.ON_HOLD)

    def _fate_solved(self, thread: _Thread) -> bool:
        """Answer, maybe a second round, solve. False when the story ran into the present."""
        if not self._agent_answers(thread, "agent"):
            return False
        if self.rng.random() < 0.7:
            if not self._customer_writes(thread, self._pick(thread, "follow")):
                return False
            if not self._agent_answers(thread, "resolve"):
                return False
        # The customer's thanks come before the agent solves; a message after solving reopens.
        if self.rng.random() < 0.5 and not self._customer_writes(
            thread, self.rng.choice(THANKS[thread.language])
        ):
            return False
        self._set_status(thread, Status.SOLVED)
        return True

    def _fate_reopened(self, thread: _Thread) -> None:
        if self._fate_solved(thread):
            # Within the threading window, so the solved conversation reopens.
            at = thread.at + timedelta(hours=self.rng.uniform(2, 48))
            self._customer_writes(thread, self.rng.choice(REOPENS[thread.language]), at)

    def _fate_closed(self, thread: _Thread) -> None:
        if self._fate_solved(thread):
            self._set_status(thread, Status.CLOSED)

    def _fate_merged(self, thread: _Thread) -> None:
        """The customer also wrote on a second channel; the agent merges that one in."""
        plan = thread.plan
        twin = _Thread(plan, self.world.inboxes[plan.second_kind], thread.facts, thread.at)
        twin.sequence = 50  # its own external ids
        at = thread.at + timedelta(minutes=self.rng.uniform(5, 90))
        if not self._customer_writes(twin, DUPLICATES[thread.language], at):
            return
        agent = self._assign(thread)
        assert twin.conversation is not None and thread.conversation is not None
        # Only one customer's conversations merge (with --force on an old demo the second
        # channel may belong to another customer: then the two stay apart).
        if twin.conversation.customer_id == thread.conversation.customer_id:
            actions.merge_conversations(
                source=twin.conversation, target=thread.conversation, actor=agent
            )
        if self.rng.random() < 0.5:
            self._fate_solved(thread)
        else:
            self._fate_waiting(thread)

    # Steps -----------------------------------------------------------------------------------

    def _later(self, thread: _Thread, who: str) -> datetime:
        fast = thread.inbox.kind in FAST_KINDS
        if who == "agent":
            minutes = self.rng.uniform(2, 45) if fast else self.rng.uniform(20, 600)
        else:
            minutes = self.rng.uniform(1, 240) if fast else self.rng.uniform(60, 1440)
        return thread.at + timedelta(minutes=minutes)

    def _in_the_past(self, at: datetime) -> bool:
        return at < self.now - timedelta(minutes=1)

    def _customer_writes(
        self, thread: _Thread, template: str, at: datetime | None = None, *, subject: str = ""
    ) -> bool:
        """The customer's next message; False (nothing written) when it would be in the future."""
        at = at or self._later(thread, "customer")
        if not self._in_the_past(at):
            return False
        plan, kind = thread.plan, thread.inbox.kind
        external_id = f"demo-{plan.index}-{thread.sequence}"
        references = []
        if kind == InboxKind.EMAIL and thread.conversation is not None:
            # Mail clients quote the message they answer: explicit threading.
            references = [thread.last_outbound_id or thread.last_inbound_id]
            subject = "Re: " + thread.conversation.subject
        result = actions.receive_message(
            inbox=thread.inbox,
            message=InboundMessage(
                external_id=external_id,
                identities=_identities(plan.person, kind, plan.index),
                text=thread.text(template),
                subject=subject if kind in SIGNED_KINDS else "",
                customer_name=plan.person.name,
                sent_at=at,
                references=[r for r in references if r],
                thread_key=_thread_key(kind, plan.index),
            ),
        )
        thread.conversation = result.conversation
        thread.at, thread.last_inbound_id = at, external_id
        thread.sequence += 1
        return True

    def _agent_answers(self, thread: _Thread, part: str, *, status: str | None = None) -> bool:
        """The assigned agent replies (assigning first); False when that would be in the future."""
        at = self._later(thread, "agent")
        if not self._in_the_past(at):
            return False
        agent = thread.agent or self._assign(thread)
        if self.rng.random() < 0.3:
            self._note(
                thread, self.rng.choice(NOTES[thread.plan.intent]), at - timedelta(minutes=1)
            )
        message = actions.reply(
            conversation=thread.conversation,  # type: ignore[arg-type]
            actor=agent,
            text=self._reply_text(thread, agent, self._pick(thread, part)),
            status=status,
            at=at,
        )
        # Delivered long ago: record it as sent, with a provider id the customer's mail can quote.
        provider_id = f"demo-out-{thread.plan.index}-{thread.sequence}"
        claimed = actions.claim_delivery(message_id=message.pk)
        if claimed is not None:
            actions.mark_delivery_sent(
                message=claimed, provider_id=provider_id, status="sent", attempt=1
            )
        thread.at, thread.last_outbound_id = at, provider_id
        thread.sequence += 1
        return True

    def _reply_text(self, thread: _Thread, agent: Agent, template: str) -> str:
        greeting = GREETINGS[thread.language].format(name=thread.plan.person.salutation)
        body = thread.text(template)
        if thread.inbox.kind not in SIGNED_KINDS:
            return f"{greeting} {body}"
        signature = SIGNATURES[thread.language].format(agent=agent.name.split()[0])
        return f"{greeting}\n\n{body}\n\n{signature}"

    def _pick(self, thread: _Thread, part: str) -> str:
        return self.rng.choice(THREADS[thread.language][thread.plan.intent][part])

    def _note(self, thread: _Thread, template: str, at: datetime | None = None) -> None:
        actions.add_note(
            conversation=thread.conversation,  # type: ignore[arg-type]
            actor=thread.agent or self._assign(thread),
            text=thread.text(template),
            at=at or thread.at,
        )

    def _assign(self, thread: _Thread, *, by_lead: bool = False) -> Agent:
        inbox = thread.inbox
        able = [a for a in self.world.agents.values() if a.role != Role.ADMIN]
        able = [a for a in able if agent_can_access_inbox(a, inbox.pk)]
        speakers = [a for a in able if thread.language in a.skills.get("languages", [])]
        agent = self.rng.choice(speakers or able)
        lead = self.world.agents["lena"]
        thread.conversation = actions.assign(
            conversation=thread.conversation,  # type: ignore[arg-type]
            actor=lead if by_lead or self.rng.random() < 0.4 else agent,
            assignee=agent,
            team=self.world.team_of[inbox.kind],
        )
        thread.agent = agent
        return agent

    def _triage(self, thread: _Thread) -> None:
        plan, rng = thread.plan, self.rng
        tags = [INTENT_TAGS[plan.intent]]
        if plan.person.vip:
            tags.append("vip")
        if plan.intent == "wismo" and rng.random() < 0.3:
            tags.append("customs")
        self._tag(thread, tags)
        if plan.intent == "complaint" or (plan.intent == "damaged" and rng.random() < 0.3):
            self._set_priority(thread, Priority.HIGH)
        elif plan.intent == "presale" and rng.random() < 0.5:
            self._set_priority(thread, Priority.LOW)

    def _tag(self, thread: _Thread, names: list[str]) -> None:
        actions.tag(conversation=thread.conversation, actor=thread.agent, names=names)  # type: ignore[arg-type]

    def _set_priority(self, thread: _Thread, priority: str) -> None:
        thread.conversation = actions.set_priority(
            conversation=thread.conversation,  # type: ignore[arg-type]
            actor=thread.agent,
            priority=priority,
        )

    def _set_status(self, thread: _Thread, status: str) -> None:
        thread.conversation = actions.set_status(
            conversation=thread.conversation,  # type: ignore[arg-type]
            actor=thread.agent,
            status=status,
        )

    def _link_contact_details(self, person: _Person, thread: _Thread) -> None:
        """Tie the customer's email and phone together once, as the shop's order data does.

        Then a customer who wrote by email and later on WhatsApp is one customer. An identity
        another customer owns stays there (never merged automatically).
        """
        if person.linked or not (person.email and person.phone):
            return
        person.linked = True
        customer = Customer.objects.get(pk=thread.conversation.customer_id)  # type: ignore[union-attr]
        region = self.world.store.country
        for kind, value in (("email", person.email), ("phone", person.phone)):
            ref = normalize(kind, value, default_region=region)
            if Identity.objects.filter(kind=ref.kind, value=ref.value).exists():
                continue
            try:
                link_identity(customer=customer, identity=ref, actor=None)
            except Conflict:
                continue


def _thread_key(kind: str, index: int) -> str:
    """A channel's own thread id: chat sessions, Amazon threads, the order system's tickets."""
    if kind == InboxKind.CHAT:
        return f"chat-session-{index}"
    if kind == InboxKind.MARKETPLACE:
        return f"amzn-thread-{index}"
    if kind == InboxKind.API:
        return f"ticket-{index}"
    return ""  # email threads by references; WhatsApp and Telegram by the window


# Tracking number shapes per carrier: "#" is a digit, "@" a capital letter.
TRACKING_SHAPES = {
    "UPS": "1Z@@@#############",
    "USPS": "9400" + "#" * 18,
    "China Post": "L@#########CN",
    "YunExpress": "YT" + "#" * 16,
    "Aramex": "#" * 11,
    "DHL Express": "#" * 10,
    "Correos": "PQ@@" + "#" * 18,
    "DHL": "00340" + "#" * 15,
    "Hermes": "H" + "#" * 19,
}


def _tracking_number(rng: random.Random, carrier: str) -> str:
    def fill(char: str) -> str:
        if char == "#":
            return rng.choice("0123456789")
        if char == "@":
            return rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ")
        return char

    return "".join(fill(char) for char in TRACKING_SHAPES[carrier])
